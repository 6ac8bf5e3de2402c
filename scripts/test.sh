#!/usr/bin/env bash
# test.sh: install dependencies, then run the whole test suite twice: a -Werror build in build-test/
# and the same under ASan+UBSan in build-asan/; then each fuzz target briefly under libFuzzer
# (build-fuzz/, clang, FUZZ_SECONDS each, default 20). Ends with the one line
# "N passed, N failed, N skipped" summed over all of it.
#
#   scripts/test.sh [ARGS...]   ARGS go to every `meson test` (e.g. a suite: --suite control)
#   VMC_NO_ASAN=1, VMC_NO_FUZZ=1 leave a phase out; VMC_JOBS (default 2) build jobs.
set -uo pipefail

cd "$(dirname "$0")/.."
scripts/setup.sh --no-build || exit 1

jobs=${VMC_JOBS:-2}
passed=0 failed=0 skipped=0 rc=0

# Add one build's results to the totals (a run that failed without a log counts one failure).
count() {   # count DIR RC
	local log="$1/meson-logs/testlog.json" p=0 f=1 s=0
	if [ -f "$log" ]; then
		p=$(grep -c '"result": "OK"' "$log")
		f=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log")
		s=$(grep -c '"result": "SKIP"' "$log")
	fi
	[ "$2" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	[ "$2" -ne 0 ] && rc=1
}

# Configure (once), build and test one directory.
phase() {   # phase NAME DIR "SETUP ARGS" [meson test args...]
	local name="$1" dir="$2" setup="$3" t0=$SECONDS r
	shift 3
	echo "== test.sh: $name ($dir)"
	rm -f "$dir/meson-logs/testlog.json"
	if [ ! -f "$dir/build.ninja" ]; then
		# shellcheck disable=SC2086
		meson setup "$dir" $setup >/dev/null || { count "$dir" 1; return; }
	fi
	if ! ninja -C "$dir" -j "$jobs" >/dev/null; then
		ninja -C "$dir" -j 1 | tail -20
		count "$dir" 1
		return
	fi
	meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 1 "$@"
	r=$?
	count "$dir" $r
	echo "== test.sh: $name done in $((SECONDS - t0)) s"
}

phase "plain build" build-test "--buildtype=debugoptimized -Dwerror=true" "$@"

if [ "${VMC_NO_ASAN:-0}" != 1 ]; then
	# Every finding fails its test: UBSan stops at the first report, ASan aborts and checks leaks.
	# The guest agent is built without sanitizers (guest-agent/meson.build). No -Werror here:
	# gcc's warnings under -fsanitize have false positives (the plain build keeps -Werror).
	ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:quarantine_size_mb=64" \
	UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1" \
		phase "ASan+UBSan build" build-asan \
		"--buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false" \
		--timeout-multiplier 3 "$@"
fi

if [ "${VMC_NO_FUZZ:-0}" != 1 ]; then
	if command -v clang >/dev/null; then
		echo "== test.sh: fuzz targets, ${FUZZ_SECONDS:-20} s each (build-fuzz)"
		t0=$SECONDS
		[ -f build-fuzz/build.ninja ] ||
			CC=clang meson setup build-fuzz -Dfuzz=true --buildtype=debugoptimized >/dev/null
		rm -f build-fuzz/meson-logs/testlog.json
		if ninja -C build-fuzz -j "$jobs" fuzz >/dev/null; then
			ASAN_OPTIONS="quarantine_size_mb=16" meson test -C build-fuzz --no-rebuild --suite fuzz \
				--print-errorlogs --num-processes 1
			count build-fuzz $?
		else
			count build-fuzz 1
		fi
		echo "== test.sh: fuzz done in $((SECONDS - t0)) s"
	else
		echo "== test.sh: clang missing: fuzz targets not run (counted as skipped)"
		skipped=$((skipped + 1))
	fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"

#!/usr/bin/env bash
# fuzz.sh: build the libFuzzer targets (clang, ASan+UBSan) into build-fuzz/ and run each for a time
# or a number of inputs, one at a time; prints executions and crashes per target.
#
#   scripts/fuzz.sh [--time SECONDS | --runs N] [--unit-timeout S] [--jobs-dir DIR] [TARGET...]
#       TARGET: control cli_replies run_args workload util loader hcall snapshot (default: all)
#       --time S   per target (default 60); --runs N: stop after N inputs instead
#       --unit-timeout S: an input running longer is a failure (default 10; raise it on a loaded
#       machine, where a niced fuzzer can be descheduled for seconds)
#       new inputs go to DIR/TARGET (default build-fuzz/corpus-new); the committed seed corpus in
#       tests/fuzz/corpus/TARGET is read, never written; a crash leaves DIR/TARGET-crash-*
# Exit status: 0 no crash, 1 a target crashed or failed to build, 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=60)
unit_timeout=10
out=build-fuzz/corpus-new
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
	--time) limit=(-max_total_time="$2"); shift ;;
	--runs) limit=(-runs="$2"); shift ;;
	--unit-timeout) unit_timeout="$2"; shift ;;
	--jobs-dir) out="$2"; shift ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) echo "fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	*) targets+=("$1") ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || targets=(control cli_replies run_args workload util loader hcall snapshot)

command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (scripts/setup.sh --fuzz installs it)" >&2; exit 1; }
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Dfuzz=true --buildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C build-fuzz fuzz >/dev/null || { echo "fuzz.sh: build failed" >&2; exit 1; }

# A small quarantine keeps use-after-free detection and stops ASan from touching fresh pages on
# every allocation (10x more inputs a second on the control target).
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16}"
crashed=0
printf '%-12s %12s %10s %8s %s\n' TARGET EXECUTIONS EXEC/S CRASHES STATUS
for t in "${targets[@]}"; do
	exe=build-fuzz/tests/fuzz/fuzz_$t
	[ -x "$exe" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
	mkdir -p "$out/$t"
	log="$out/$t.log"
	"$exe" "${limit[@]}" -timeout="$unit_timeout" -rss_limit_mb=4096 -print_final_stats=1 \
		-artifact_prefix="$out/$t-" "$out/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	crashes=$(ls "$out/$t"-crash-* "$out/$t"-leak-* "$out/$t"-timeout-* "$out/$t"-oom-* 2>/dev/null | wc -l)
	status=ok
	if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
		status="FAILED (exit $rc, see $log)"
		crashed=1
	fi
	printf '%-12s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${secs:-?}" "$crashes" "$status"
done
exit $crashed

#!/usr/bin/env bash
# test.sh: install dependencies, build with -Werror into build-test/ and run every test suite.
# Ends with the line "N passed, N failed, N skipped".
set -uo pipefail

cd "$(dirname "$0")/.."
scripts/setup.sh --no-build || exit 1

dir=build-test
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" --buildtype=debugoptimized -Dwerror=true >/dev/null || exit 1
fi
ninja -C "$dir" || { echo "0 passed, 1 failed"; exit 1; }

meson test -C "$dir" --print-errorlogs --num-processes 1 "$@"
rc=$?

log="$dir/meson-logs/testlog.json"
if [ -f "$log" ]; then
	passed=$(grep -c '"result": "OK"' "$log")
	failed=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log")
	skipped=$(grep -c '"result": "SKIP"' "$log")
else
	passed=0; failed=1; skipped=0
fi
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"

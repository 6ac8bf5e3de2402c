#!/bin/sh
# run_brief.sh: CI's short libFuzzer run of one target: FUZZ_SECONDS (default 20) over its corpus,
# new inputs kept in a scratch directory so that the committed corpus never changes.
set -u
exe="$1"; corpus="$2"
scratch=$(mktemp -d /tmp/vmc-fuzz.XXXXXX) || exit 1
trap 'rm -rf "$scratch"' EXIT
# a crashing input is kept next to where the test ran (the build directory)
"$exe" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
	-artifact_prefix="$PWD/fuzz-$(basename "$exe")-" "$scratch" "$corpus"

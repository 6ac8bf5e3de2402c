#!/usr/bin/env bash
# experiments.sh: run every vmcompact benchmark once with --json and keep the results together.
#
#   scripts/experiments.sh [OUTDIR]      default OUTDIR: results/<date-time>
#   MEM=512M AGE=0.95 SEED=3 scripts/experiments.sh
#
# Scattered guests need about one mapping per 4 KiB page: with the default vm.max_map_count
# keep MEM at 256M, or raise it first (scripts/setup.sh --raise-map-count). One run each: this
# host is shared and noisy, so compare the ratios inside one result file.
set -uo pipefail

cd "$(dirname "$0")/.."
out=${1:-results/$(date +%Y%m%d-%H%M%S)}
mem=${MEM:-256M}
age=${AGE:-0.9}
seed=${SEED:-7}
bin=build/vmm/vmcompact
[ -x "$bin" ] || { echo "experiments.sh: $bin not built; run scripts/setup.sh first" >&2; exit 1; }
mkdir -p "$out"

run() {
	local name=$1; shift
	echo "experiments.sh: $name: vmcompact $*"
	if "$bin" "$@" --json > "$out/$name.json" 2> "$out/$name.log"; then
		echo "  -> $out/$name.json"
	else
		echo "  -> FAILED (exit $?), see $out/$name.log"
		failed=1
	fi
}

failed=0
uname -r > "$out/host.txt"
cat /proc/sys/vm/max_map_count >> "$out/host.txt"
run startup bench startup --mem "$mem" --runs 10
run gups bench gups --mem "$mem" --age "$age" --seed "$seed"
run defrag bench defrag --mem "$mem" --age "$age" --seed "$seed"
run defragd bench defragd --mem "$mem" --age "$age" --seed "$seed"
run moves bench moves --mem "$mem" --age "$age" --seed "$seed" --moves 1000000
exit $failed

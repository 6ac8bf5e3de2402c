#!/usr/bin/env bash
# experiments.sh: a thin wrapper over `vmcompact experiment` (the matrix, CSV, summary and plots).
#
#   scripts/experiments.sh [OUTDIR] [--quick | --spec FILE]    default OUTDIR: results/<date-time>
#
# The matrix (backings, workloads, sizes, repetitions) lives in scripts/experiments/*.spec;
# copy one and pass --spec to change it. See README 'Experiments'.
set -euo pipefail

cd "$(dirname "$0")/.."
out=results/$(date +%Y%m%d-%H%M%S)
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	out=$1
	shift
fi
bin=build/vmm/vmcompact
[ -x "$bin" ] || { echo "experiments.sh: $bin not built; run scripts/setup.sh first" >&2; exit 1; }
exec "$bin" experiment --out "$out" "$@"

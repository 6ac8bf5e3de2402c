#!/bin/bash
# cli_usage.sh: vmcompact's exit codes and one-line errors for bad command lines; nothing boots, no KVM.
# Each case: expected exit code, a text the output must contain, the arguments.
set -u
exe="$1"
dir=$(mktemp -d /tmp/vmc-cli-usage.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
export VMCOMPACT_RUNTIME_DIR="$dir/run"
long=$(printf 'n%.0s' $(seq 65))
failures=0

check() {   # check CODE NEEDLE ARGS...
	local want="$1" needle="$2" rc
	shift 2
	timeout 20 "$exe" "$@" >"$dir/out" 2>"$dir/err"; rc=$?
	if [ "$rc" -ne "$want" ] || ! grep -qF -- "$needle" "$dir/out" "$dir/err"; then
		echo "FAIL: vmcompact $*: exit $rc (want $want), want '$needle' in:"
		cat "$dir/out" "$dir/err" | head -5
		failures=$((failures + 1))
	fi
}

# a bad value is one error line (and the --help hint), on stderr, before any work: nothing on stdout
check_refused() {   # check_refused NEEDLE ARGS...
	local needle="$1"
	shift
	check 2 "$needle" "$@"
	if [ -s "$dir/out" ] || [ "$(grep -vc "^Try 'vmcompact" "$dir/err")" -ne 1 ]; then
		echo "FAIL: vmcompact $*: want one error line and no output, got:"
		cat "$dir/out" "$dir/err" | head -5
		failures=$((failures + 1))
	fi
}

check 2 "Usage"             # no command
check 2 "unknown command" frobnicate
check 0 "run" --help
check 0 "--workload" run --help
check 2 "unknown option" run --frob
check 2 "--mem" run --mem 3M
check 2 "--mem" run --mem 65M
check 2 "--cpus" run --cpus 0
check 2 "unknown workload" run --workload nosuch
check 2 "ws" run --workload gups:ws=abc
check 1 "nonexistent" run --mem 64M --agent /nonexistent
check 2 "unknown benchmark" bench nosuch
for bad in "--age 1.5" "--slack lots" "--defrag sometimes" "--defrag-algo magic" "--seed -1" \
	   "--max-pause-us 1" "--proactiveness 101"; do
	check 2 "${bad%% *}" run $bad
done
# issue 13, item 8: a missing value is named as such, not as an unknown option
check_refused "option '--mem' needs a value" run --mem
check_refused "option '--mem' needs a value" demo --mem
check_refused "option '--mem' needs a value" bench startup --mem
# items 4 and 7: --name is checked up front (exit 2), an over-long one is refused, never cut
check_refused "at most 64" run --name "$long" --mem 64M
check_refused "invalid VM name" run --name "bad name" --mem 64M
check_refused "--promote-path 'fast': need auto, memslot or remap" run --promote-path fast
check_refused "bad value 'fast' for --promote-path" bench defrag --promote-path fast
# item 7: demo and bench startup validate before they start a guest process
check_refused "--mem '3M'" demo --mem 3M
check_refused "--age '2'" demo --age 2
check_refused "--seed 'x'" demo --seed x
check_refused "--workload 'stream'" demo --workload stream
check_refused "--algo 'turbo'" demo --algo turbo
check_refused "--mem '3M'" bench startup --mem 3M
check_refused "--cpus '0'" bench startup --cpus 0
check_refused "too small for 4 vCPUs" bench startup --mem 8M --cpus 4
check_refused "/nonexistent" bench startup --agent /nonexistent
check_refused "--rounds '0': need 1..9" bench snapshot --rounds 0
check_refused "--rounds '10': need 1..9" bench snapshot --rounds 10

if [ "$failures" -ne 0 ]; then
	echo "$failures case(s) failed"
	exit 1
fi
echo "ok vmcompact exit codes and usage errors"

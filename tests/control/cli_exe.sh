#!/bin/sh
# cli_exe.sh: the control commands as wired into the vmcompact binary (no VM needed).
set -u
exe="$1"
dir=$(mktemp -d /tmp/vmc-cli-exe.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
export VMCOMPACT_RUNTIME_DIR="$dir/run"
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$exe" list 2>"$dir/err"); rc=$?
[ $rc -eq 0 ] || fail "list: exit $rc: $(cat "$dir/err")"
echo "$out" | grep -q '^NAME .*BACKING_2M' || fail "list: no header: $out"

"$exe" stat nosuch >"$dir/out" 2>"$dir/err"; rc=$?
[ $rc -eq 3 ] || fail "stat nosuch: exit $rc, want 3: $(cat "$dir/err")"
grep -q "no VM named 'nosuch'" "$dir/err" || fail "stat nosuch: $(cat "$dir/err")"

for c in list stat defrag stop; do
	"$exe" $c --help >"$dir/out" 2>&1 || fail "$c --help: exit $?"
	grep -q "usage: vmcompact $c" "$dir/out" || fail "$c --help: $(cat "$dir/out")"
done

"$exe" defrag nosuch --mode turbo >"$dir/out" 2>"$dir/err"; rc=$?
[ $rc -eq 2 ] || fail "defrag --mode turbo: exit $rc, want 2"

"$exe" stop nosuch >"$dir/out" 2>"$dir/err"; rc=$?
[ $rc -eq 3 ] || fail "stop nosuch: exit $rc, want 3"
echo "ok vmcompact list/stat/defrag/stop wired"

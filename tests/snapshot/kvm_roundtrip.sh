#!/bin/sh
# kvm_roundtrip.sh: a verify guest (2 vCPUs, aged) snapshotted live and paused, then restored eager, lazy and
# with its layout: each restore continues verify for >= 3 more passes with 0 errors. Skips (77) without /dev/kvm.
set -u
exe="$1"
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: needs python3 to read JSON"; exit 77; }
dir=$(mktemp -d /var/tmp/vmc-snap-test.XXXXXX) || exit 1
export VMCOMPACT_RUNTIME_DIR="$dir"
name=snaptest$$
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$exe" run --name "$name" --mem 256M --cpus 2 --age 0.9 --workload verify:forever --json >"$dir/orig.json" 2>"$dir/orig.err" &
pid=$!
for i in $(seq 100); do [ -S "$dir/$name.sock" ] && break; sleep 0.1; done
[ -S "$dir/$name.sock" ] || fail "the VM did not come up: $(cat "$dir/orig.err")"
sleep 2
"$exe" snapshot "$name" "$dir/live.snap" --live --json >"$dir/live.out" || fail "live snapshot: $(cat "$dir/live.out")"
"$exe" snapshot "$name" "$dir/paused.snap" --json >"$dir/paused.out" || fail "snapshot: $(cat "$dir/paused.out")"
"$exe" stop "$name" >/dev/null || fail "stop"
wait $pid
python3 - "$dir/orig.json" <<'EOF' || fail "the original run had verify errors"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["totals"]["verify_errors"] == 0 else 1)
EOF

check() { # name file, extra args
	what=$1; file=$2; shift 2
	start=$(date +%s%N)
	"$exe" run --restore "$file" "$@" --timeout 20 --json >"$dir/$what.json" 2>"$dir/$what.err"
	rc=$?
	[ $rc = 0 ] || fail "$what: exit $rc: $(tail -3 "$dir/$what.err")"
	python3 - "$dir/$what.json" "$what" <<'EOF' || fail "$what: see $dir/$what.json"
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
print("%s: verify errors %d, min passes %d, backing_2m %.3f, startup %.1f ms" %
      (sys.argv[2], t["verify_errors"], t["min_passes"], r.get("backing_2m", -1), r.get("startup_ms", -1)))
sys.exit(0 if t["verify_errors"] == 0 and t["min_passes"] >= 3 else 1)
EOF
}
check eager "$dir/paused.snap"
check live "$dir/live.snap"
check lazy "$dir/paused.snap" --lazy
check layout "$dir/paused.snap" --restore-layout
echo ok

#!/bin/sh
# kvm_roundtrip.sh: a verify guest (2 vCPUs, aged) snapshotted live and paused, then restored eager, lazy and
# with its layout: each restore continues verify for >= 3 more passes with 0 errors; a default restore is all
# on 2 MiB blocks, a layout restore has the saved backing_2m and buddyinfo; the file is at most the touched
# memory + 1 %. VMC_SNAP_TEST_MEM sets the guest size (256M; 1G at --age 0.9 needs vm.max_map_count raised).
# Skips (77) without /dev/kvm.
set -u
exe="$1"
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: needs python3 to read JSON"; exit 77; }
dir=$(mktemp -d /var/tmp/vmc-snap-test.XXXXXX) || exit 1
export VMCOMPACT_RUNTIME_DIR="$dir"
name=snaptest$$
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$exe" run --name "$name" --mem "${VMC_SNAP_TEST_MEM:-256M}" --cpus 2 --age 0.9 --workload verify:forever --json >"$dir/orig.json" 2>"$dir/orig.err" &
pid=$!
for i in $(seq 600); do [ -S "$dir/$name.sock" ] && break; sleep 0.1; done
[ -S "$dir/$name.sock" ] || fail "the VM did not come up: $(cat "$dir/orig.err")"
sleep 2
"$exe" snapshot "$name" "$dir/live.snap" --live --json >"$dir/live.out" || fail "live snapshot: $(cat "$dir/live.out")"
"$exe" snapshot "$name" "$dir/paused.snap" --json >"$dir/paused.out" || fail "snapshot: $(cat "$dir/paused.out")"
"$exe" stop "$name" >/dev/null || fail "stop"
wait $pid
python3 - "$dir/orig.json" "$dir/paused.out" "$dir/live.out" <<'EOF' || fail "the original run had verify errors, or a snapshot is too big"
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["totals"]["verify_errors"] == 0
for f in sys.argv[2:]:
    s = json.load(open(f))
    touched = s["present_pages"] * 4096
    print("%s: %d bytes for %d touched bytes (+%.2f %%)" % (f.split("/")[-1], s["file_bytes"], touched,
          100.0 * (s["file_bytes"] - touched) / touched))
    ok = ok and s["file_bytes"] <= touched * 1.01
sys.exit(0 if ok else 1)
EOF

check() { # name file, extra args
	what=$1; file=$2; shift 2
	start=$(date +%s%N)
	"$exe" run --restore "$file" "$@" --timeout $((20 * ${VMC_TEST_TIME_SCALE:-1})) --json >"$dir/$what.json" 2>"$dir/$what.err"
	rc=$?
	[ $rc = 0 ] || fail "$what: exit $rc: $(tail -3 "$dir/$what.err")"
	python3 - "$dir/$what.json" "$what" "$dir/orig.json" <<'EOF' || fail "$what: see $dir/$what.json"
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
o = json.load(open(sys.argv[3]))
print("%s: verify errors %d, min passes %d, backing_2m %.3f (after %.3f, saved %.3f), startup %.1f ms" %
      (sys.argv[2], t["verify_errors"], t["min_passes"], r.get("backing_2m", -1),
       r["memory"]["after"]["backing_2m"], o["memory"]["after"]["backing_2m"], r.get("startup_ms", -1)))
ok = t["verify_errors"] == 0 and t["min_passes"] >= 3
if sys.argv[2] in ("eager", "live"):
    ok = ok and r["memory"]["after"]["backing_2m"] >= 0.999
if sys.argv[2] == "layout":
    # the saved layout replayed: same coverage and free lists as the guest had when saved
    same = (r["memory"]["after"]["backing_2m"] == o["memory"]["after"]["backing_2m"] and
            r["memory"]["after"]["buddyinfo"] == o["memory"]["after"]["buddyinfo"])
    print("layout: buddyinfo %s, saved %s" % (r["memory"]["after"]["buddyinfo"], o["memory"]["after"]["buddyinfo"]))
    ok = ok and same
sys.exit(0 if ok else 1)
EOF
}
check eager "$dir/paused.snap"
check live "$dir/live.snap"
check lazy "$dir/paused.snap" --lazy
check layout "$dir/paused.snap" --restore-layout
echo ok

#!/bin/sh
# test_libvirt.sh: a libvirt domain (from the repo's template) running the agent's verify workload: stat, age, defrag --domain --wait to >= 99 % 2 MiB, 0 verify errors; memfd and bad names.
# Usage: test_libvirt.sh VMCOMPACT AGENT LIBVIRT_SESSION_SH RENDER_DOMAIN_SH.  Skips (77) without root, libvirtd, virsh, QEMU.
set -u
exe=$1 agent=$(realpath "$2") session=$3 render=$4
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in libvirtd virsh qemu-system-x86_64 unshare python3; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
dir=$(mktemp -d /tmp/vmc-libvirt-test.XXXXXX) || exit 1
uri=$("$session" start "$dir/lv" 2>"$dir/start.err") || { echo "SKIP: private libvirtd did not start: $(cat "$dir/start.err")"; rm -rf "$dir"; exit 77; }
cleanup() { "$session" stop "$dir/lv" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
share() { python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["share_2m"])'; }
at_least() { python3 -c "import sys; sys.exit(0 if $1 >= $2 else 1)"; }

name=vmc-test-$$
"$render" "$name" anon-thp 64 1 "verify:forever" "$agent" "$dir/$name.serial" >"$dir/$name.xml" || fail "render"
virsh -c "$uri" create "$dir/$name.xml" >"$dir/out" 2>&1 || fail "virsh create: $(cat "$dir/out")"
# after the first progress line verify has written all its RAM (later first touches would get THPs)
for _ in $(seq 150); do grep -q "agent: progress" "$dir/$name.serial" 2>/dev/null && break; sleep 0.1; done
grep -q "agent: progress" "$dir/$name.serial" || fail "the agent did not boot: $(cat "$dir/$name.serial")"

"$exe" stat --domain "$name" --connect "$uri" --json >"$dir/s0.json" || fail "stat --domain"
"$exe" qemu age --domain "$name" --connect "$uri" >"$dir/out" 2>&1 || fail "qemu age: $(cat "$dir/out")"
"$exe" stat --domain "$name" --connect "$uri" --json >"$dir/s1.json" || fail "stat after age"
aged=$(share <"$dir/s1.json")
at_least 0.05 "$aged" || fail "after qemu age the 2M share is $aged, want ~0"
"$exe" defrag --domain "$name" --connect "$uri" --wait >"$dir/defrag.out" 2>&1 || fail "defrag --domain: $(cat "$dir/defrag.out")"
"$exe" stat --domain "$name" --connect "$uri" --json >"$dir/s2.json" || fail "stat after defrag"
after=$(share <"$dir/s2.json")
at_least "$after" 0.99 || fail "after defrag the 2M share is $after, want >= 0.99"
# verify keeps running: two more progress lines after the defrag, every one with 0 errors
seen=$(grep -c "agent: progress" "$dir/$name.serial")
for _ in $(seq 300); do [ "$(grep -c "agent: progress" "$dir/$name.serial")" -ge $((seen + 2)) ] && break; sleep 0.1; done
[ "$(grep -c "agent: progress" "$dir/$name.serial")" -ge $((seen + 2)) ] || fail "verify stopped reporting: $(tail -3 "$dir/$name.serial")"
grep "agent: progress" "$dir/$name.serial" | grep -v ", errors 0$" && fail "verify found errors: $(grep -v ', errors 0$' "$dir/$name.serial" | tail -3)"
grep -qi "mismatch\|stale" "$dir/$name.serial" && fail "verify: $(grep -i 'mismatch\|stale' "$dir/$name.serial" | head -3)"
passes=$(grep "agent: progress" "$dir/$name.serial" | tail -1 | sed 's/.*passes \([0-9]*\).*/\1/')
virsh -c "$uri" destroy "$name" >/dev/null 2>&1
echo "ok libvirt domain $name: 2M share $(share <"$dir/s0.json") -> aged $aged -> defrag $after, verify $passes passes, 0 errors"

mname=vmc-test-memfd-$$
"$render" "$mname" memfd 64 1 "idle" "$agent" "$dir/$mname.serial" >"$dir/$mname.xml" || fail "render memfd"
virsh -c "$uri" create "$dir/$mname.xml" >"$dir/out" 2>&1 || fail "virsh create memfd: $(cat "$dir/out")"
"$exe" defrag --domain "$mname" --connect "$uri" --wait >"$dir/out" 2>"$dir/err"; rc=$?
[ $rc -eq 7 ] || fail "defrag of a memfd domain: exit $rc, want 7: $(cat "$dir/err")"
"$exe" stat --domain nosuch-$$ --connect "$uri" >"$dir/out" 2>"$dir/err"; rc=$?
[ $rc -eq 3 ] || fail "stat --domain nosuch: exit $rc, want 3: $(cat "$dir/err")"
echo "ok libvirt bad targets: memfd domain not collapsible 7, no such domain 3"

#!/bin/sh
# test_qemu_defrag.sh: defrag a QEMU guest from outside: stat ~0 % on 4 KiB shmem, defrag, >= 99 % from smaps; bad targets' exit codes.
# Then `qemu run` boots the agent, and its verify workload runs while it is aged and defragmented from outside.
# Usage: test_qemu_defrag.sh VMCOMPACT AGENT.  Skips (77) without qemu-system-x86_64 or root.
set -u
exe="$1"
agent="$2"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (pagemap PFNs, process_madvise on another process)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 needed to read JSON"; exit 77; }
dir=$(mktemp -d /tmp/vmc-qemu-test.XXXXXX) || exit 1
pids=""
cleanup() {
	# start_qemu runs in $(...): its QEMUs are known by their pid files
	for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A paused QEMU (TCG) whose RAM is a file on /dev/shm (shmem, 4 KiB pages: shmem THP is off),
# 2 MiB-aligned, preallocated. $1 name, $2 backend options.
start_qemu() {
	qemu-system-x86_64 -M microvm,memory-backend=m0 -accel tcg -m 64M -object "$2" -S \
		-display none -nodefaults -qmp "unix:$dir/$1.sock,server=on,wait=off" \
		-daemonize -pidfile "$dir/$1.pid" || fail "qemu did not start ($1)"
	cat "$dir/$1.pid"
}
share() { python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["share_2m"])'; }

[ -d /dev/shm ] || { echo "SKIP: no /dev/shm tmpfs"; exit 77; }
ram=/dev/shm/vmc-qemu-test.$$
# One line (usage: and the usage text), a documented exit code.
expect() {
	want=$1; shift
	"$@" >"$dir/out" 2>"$dir/err"; rc=$?
	[ $rc -eq "$want" ] || fail "$*: exit $rc, want $want: $(cat "$dir/err")"
	# usage errors (2) are followed by the usage text; the others are one line
	[ "$want" -eq 2 ] || [ "$(wc -l <"$dir/err")" -le 1 ] || fail "$*: more than one error line: $(cat "$dir/err")"
}

pid=$(start_qemu shm "memory-backend-file,id=m0,size=64M,mem-path=$ram,share=on,align=2M,prealloc=on")
rm -f "$ram"
"$exe" stat --qemu "$pid" --json >"$dir/before.json" 2>"$dir/err" || fail "stat: $(cat "$dir/err")"
before=$(share <"$dir/before.json")
python3 -c "import sys; sys.exit(0 if $before < 0.05 else 1)" || fail "before defrag 2M share $before, want ~0"
kvm=$(python3 -c 'import json,sys; k=json.load(sys.stdin)["kvm"]; print(k.get("why", k))' <"$dir/before.json")
[ "$kvm" = "unavailable (TCG)" ] || [ -e /dev/kvm ] || fail "KVM stats under TCG: $kvm"

"$exe" defrag --qmp "$dir/shm.sock" --wait --max-stall-ms 5 >"$dir/out" 2>"$dir/err" ||
	fail "defrag: exit $?: $(cat "$dir/err") $(cat "$dir/out")"
grep -q "collapsed 32 of 32 regions" "$dir/out" || fail "defrag summary: $(cat "$dir/out")"
"$exe" stat --qemu "$pid" --json >"$dir/after.json" || fail "stat after"
after=$(share <"$dir/after.json")
python3 -c "import sys; sys.exit(0 if $after >= 0.99 else 1)" || fail "after defrag 2M share $after, want >= 0.99"
echo "ok defrag from outside: 2M share $before -> $after (smaps)"

# Anonymous RAM (QEMU's default; prealloc gives THPs): qemu age splits the 2 MiB pages,
# watch (the background defragmenter's policy at proactiveness 90) repairs them.
expect 7 "$exe" qemu age --qemu "$pid"
pid=$(start_qemu anon "memory-backend-ram,id=m0,size=64M,prealloc=on")
"$exe" qemu age --qemu "$pid" >"$dir/out" 2>&1 || fail "qemu age: $(cat "$dir/out")"
aged=$("$exe" stat --qemu "$pid" --json | share)
python3 -c "import sys; sys.exit(0 if $aged < 0.05 else 1)" || fail "after qemu age 2M share $aged, want ~0"
"$exe" watch --qemu "$pid" --duration 3 --interval-ms 100 --proactiveness 90 --max-mbps 0 \
	--regions-per-wakeup 64 >"$dir/watch.out" 2>&1 || fail "watch: $(cat "$dir/watch.out")"
grep -q "state idle -> compacting" "$dir/watch.out" || fail "watch did not start compacting: $(cat "$dir/watch.out")"
watched=$("$exe" stat --qemu "$pid" --json | share)
python3 -c "import sys; sys.exit(0 if $watched >= 0.99 else 1)" || fail "after watch 2M share $watched: $(cat "$dir/watch.out")"
echo "ok qemu age -> $aged, watch -> $watched"

# Bad targets.
mpid=$(start_qemu memfd "memory-backend-memfd,id=m0,size=64M,share=on,prealloc=on")
expect 7 "$exe" defrag --qemu "$mpid" --wait
grep -q "not 2 MiB-congruent" "$dir/err" || fail "memfd: $(cat "$dir/err")"
expect 6 "$exe" stat --qemu $$
expect 3 "$exe" stat --qemu 999999999
expect 3 "$exe" defrag --qmp "$dir/nosuch.sock" --wait
expect 2 "$exe" stat --qemu "$pid" --qmp "$dir/shm.sock"
expect 2 "$exe" defrag --qemu "$pid" --max-stall-ms 0
expect 2 "$exe" stat --qemu abc
echo "ok bad targets: not collapsible 7, not QEMU 6, no such PID/socket 3, usage 2"

# qemu run: the agent's result, the backing, coverage from smaps.
"$exe" qemu run --mem 32M --backing anon-thp --workload verify:seconds=1 --agent "$agent" --json \
	>"$dir/run.json" 2>"$dir/run.err" || fail "qemu run: exit $?: $(tail -3 "$dir/run.err")"
python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["guest"]["totals"]["verify_errors"] == 0 and d["backing"] == "anon-thp" and d["ram"]["totals"]["ram_bytes"] == 32 << 20 else 1)' \
	<"$dir/run.json" || fail "qemu run result: $(cat "$dir/run.json")"

# Safety: verify runs in the guest while its RAM is split to 4 KiB pages and collapsed back.
"$exe" qemu run --mem 32M --backing shmem --workload verify:seconds=5 --agent "$agent" --json \
	>"$dir/safe.json" 2>"$dir/safe.err" &
runner=$!
pids="$pids $runner"
for _ in $(seq 50); do grep -q "hello from vcpu" "$dir/safe.err" 2>/dev/null && break; sleep 0.1; done
qpid=$(sed -n 's/.*QEMU pid \([0-9]*\).*/\1/p' "$dir/safe.err")
[ -n "$qpid" ] || fail "qemu run did not start: $(cat "$dir/safe.err")"
"$exe" defrag --qemu "$qpid" --json >"$dir/safe-defrag.json" 2>&1 || fail "defrag under verify: $(cat "$dir/safe-defrag.json")"
mid=$(python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["result"]; print(d["after"]["totals"]["share_2m"] if r["collapsed"] > 0 and r["huge_after"] == r["regions"] else 0)' <"$dir/safe-defrag.json")
wait $runner || fail "qemu run under defrag: exit $?: $(tail -3 "$dir/safe.err")"
python3 -c 'import json,sys; t=json.load(sys.stdin)["guest"]["totals"]; sys.exit(0 if t["verify_errors"] == 0 and t["verify_stale_words"] == 0 and t["min_passes"] > 0 else 1)' \
	<"$dir/safe.json" || fail "verify under defrag: $(cat "$dir/safe.json")"
python3 -c "import sys; sys.exit(0 if $mid >= 0.99 else 1)" || fail "under verify the 2M share reached $mid, want >= 0.99"
echo "ok qemu run: verify under defrag from outside: 0 errors, 2M share $mid"

#!/usr/bin/env bash
# test_agent_qemu.sh: boots the guest agent under qemu-system-x86_64 (PVH) and checks its JSON result line and exit status.
#
#   test_agent_qemu.sh AGENT_ELF
#
# KVM when /dev/kvm is usable, TCG otherwise; exit 77 (skip) without qemu-system-x86_64.
# QEMU's exit status through isa-debug-exit is (guest status << 1) | 1: 1 = ok, 21 = verify
# errors, 23 = bad command line, 25 = CPU exception. One case boots 2 vCPUs.
set -uo pipefail

agent=${1:?usage: test_agent_qemu.sh AGENT_ELF}
qemu=${QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null 2>&1; then
	echo "SKIP: $qemu not found (scripts/setup.sh installs qemu-system-x86)"
	exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 not found (needed to read the JSON line)"
	exit 77
fi
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	accel=(-accel kvm -cpu host)
else
	accel=(-accel tcg)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# boot NAME MACHINE MEM EXPECTED_RC APPEND [EXTRA QEMU ARGS...]: leaves the serial log in $tmp/NAME.log
boot() {
	local name=$1 machine=$2 mem=$3 want=$4 append=$5 t0 t1 rc
	shift 5
	t0=$(date +%s%N)
	timeout 60 "$qemu" -M "$machine" "${accel[@]}" -m "$mem" -nodefaults -display none -no-reboot \
		-kernel "$agent" -append "$append" -serial "file:$tmp/$name.log" -monitor none \
		-device isa-debug-exit,iobase=0xf4,iosize=4 "$@" </dev/null >"$tmp/$name.qemu" 2>&1
	rc=$?
	t1=$(date +%s%N)
	echo "$(( (t1 - t0) / 1000000 ))" >"$tmp/$name.wall_ms"
	echo "== $name: -M $machine -m $mem -append '$append': exit $rc (want $want), $(cat "$tmp/$name.wall_ms") ms"
	if [ "$rc" != "$want" ]; then
		echo "FAIL $name: QEMU exit status $rc, want $want"
		sed 's/^/  serial: /' "$tmp/$name.log" | cut -c1-400
		sed 's/^/  qemu: /' "$tmp/$name.qemu"
		failures=$((failures + 1))
		return 1
	fi
	return 0
}

# check NAME PYTHON_EXPR...: each expression over d (the JSON line) and v (d["vcpus"][0]) must hold.
check() {
	local name=$1
	shift
	python3 - "$tmp/$name.log" "$(cat "$tmp/$name.wall_ms")" "$@" <<'EOF'
import json, sys
log, wall_ms, exprs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
lines = [l for l in open(log, errors="replace").read().splitlines() if l.startswith('{"vmcompact_agent":"result"')]
if len(lines) != 1:
    print(f"FAIL: {len(lines)} JSON result lines in the serial log, want 1")
    sys.exit(1)
d = json.loads(lines[0])
v = d["vcpus"][0]
bad = [e for e in exprs if not eval(e)]
for e in bad:
    print(f"FAIL: {e}")
print(f"  tsc {d['tsc_khz']} kHz ({d['tsc_source']}), entry at {d['entry_tsc_ms']} ms of guest TSC, "
      f"{v['seconds']} s measured, updates/s {v['updates_per_sec']}, ns/access {v['ns_per_access']}")
sys.exit(1 if bad else 0)
EOF
	if [ $? != 0 ]; then
		echo "FAIL $name"
		cut -c1-400 "$tmp/$name.log" | sed 's/^/  serial: /'
		failures=$((failures + 1))
	fi
}

# gups for 300 ms over 16 MiB: the guest's own seconds must agree with the host's clock.
if boot gups microvm 64M 1 "gups:ws=16M,seconds=0.3"; then
	check gups 'd["exit_status"] == 0' 'd["error"] is None' 'd["boot"] == "pvh"' \
		'd["workload"]["name"] == "gups"' 'v["final"]' 'v["updates"] > 0' 'v["updates_per_sec"] > 0' \
		'v["ws_bytes"] == 16 << 20' '0.29 <= v["seconds"] <= 0.6' 'v["seconds"] * 1000 < wall_ms' \
		'd["tsc_source"] in ("pit", "cpuid-0x15", "cpuid-0x40000010")' 'd["cpus"] == 1'
fi

# The TSC frequency (PIT or CPUID) is right if 3 s more of guest time is about 3 s more of host
# time (the difference cancels QEMU's start-up; a 2x error would show as 1.5 s or 6 s).
if boot gups_long microvm 64M 1 "gups:ws=16M,seconds=3.3"; then
	check gups_long 'd["exit_status"] == 0' '3.29 <= v["seconds"] <= 3.6'
	extra=$(( $(cat "$tmp/gups_long.wall_ms") - $(cat "$tmp/gups.wall_ms") ))
	echo "  3 s more of guest time took $extra ms more on the host"
	if [ "$extra" -lt 2000 ] || [ "$extra" -gt 4500 ]; then
		echo "FAIL gups_long: the TSC frequency looks wrong ($extra ms, want 2000..4500)"
		failures=$((failures + 1))
	fi
fi

# verify, 2 passes over a 32 MiB slice: pass 1 writes, pass 2 and the final sweep check every word.
if boot verify microvm 36M 1 "verify:passes=2"; then
	check verify 'd["exit_status"] == 0' 'v["passes"] == 2' 'v["errors"] == 0' 'v["pages"] == 8192' \
		'v["checked_words"] == 2 * 8192 * 512' 'd["totals"]["verify_errors"] == 0' \
		'd["mem_end"] - d["mem_start"] == 32 << 20'
fi

# chase over 8 MiB of lines (131072 elements): default 1M accesses, one random cycle.
if boot chase microvm 64M 1 "chase:ws=8M seed=5"; then
	check chase 'd["exit_status"] == 0' 'd["workload"]["name"] == "chase"' 'v["accesses"] == 1 << 20' \
		'v["ns_per_access"] > 0' 'v["errors"] == 0' 'v["ws_bytes"] == 8 << 20' \
		'd["workload"]["args"]["seed"] == 5'
fi

# The same agent on q35 (SeaBIOS + pvh.bin instead of qboot), chase with one element per page.
if boot chase_q35 q35 128M 1 "chase:ws=8M,page,accesses=200k"; then
	check chase_q35 'd["exit_status"] == 0' 'v["accesses"] == 200000' 'v["pages"] == 2048' \
		'd["workload"]["args"]["page"] is True'
fi

# A 'q' on the serial port stops an unbounded workload gracefully: final report, status 0.
t0=$(date +%s%N)
(sleep 1.5; printf q; sleep 3) | timeout 60 "$qemu" -M microvm "${accel[@]}" -m 64M -nodefaults -display none \
	-no-reboot -kernel "$agent" -append "idle" -serial stdio -monitor none \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >"$tmp/stop.log" 2>&1
rc=${PIPESTATUS[1]}
echo "$(( ($(date +%s%N) - t0) / 1000000 ))" >"$tmp/stop.wall_ms"
echo "== stop: -append 'idle', 'q' on the serial port after 1.5 s: exit $rc (want 1), $(cat "$tmp/stop.wall_ms") ms"
if [ "$rc" = 1 ]; then
	check stop 'd["exit_status"] == 0' 'v["stopped"]' 'v["final"]' 'd["workload"]["name"] == "idle"'
else
	echo "FAIL stop: QEMU exit status $rc, want 1"
	sed 's/^/  serial: /' "$tmp/stop.log" | cut -c1-400
	failures=$((failures + 1))
fi

# A CPU exception is caught by the PVH IDT: one JSON line with status 12, QEMU exit 25.
if boot exception microvm 64M 25 "fault:triple"; then
	check exception 'd["exit_status"] == 12' '"#UD" in d["error"]'
fi

# A bad command line is refused with status 11 (QEMU exit 23) and a reason.
if boot badspec microvm 64M 23 "gups:nosuch=1"; then
	check badspec 'd["exit_status"] == 11' '"nosuch" in d["error"]'
fi

# -smp 2: the AP comes up through INIT-SIPI-SIPI; each vCPU verifies its own half of the RAM.
if boot smp2 microvm 68M 1 "verify:passes=2" -smp 2; then
	check smp2 'd["exit_status"] == 0' 'd["cpus"] == 2' 'len(d["vcpus"]) == 2' \
		'all(x["passes"] == 2 and x["errors"] == 0 and x["pages"] == 8192 for x in d["vcpus"])' \
		'[x["id"] for x in d["vcpus"]] == [0, 1]' 'd["totals"]["pages"] == 16384' \
		'd["totals"]["min_passes"] == 2'
fi

if [ "$failures" != 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all QEMU boots behaved (${accel[*]})"

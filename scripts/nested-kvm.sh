#!/usr/bin/env bash
# nested-kvm.sh: run a command with a working /dev/kvm on a host without one: inside an emulated (TCG) L1 Linux guest with nested SVM.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/nested-kvm.sh [OPTIONS] [--] COMMAND [ARGS...]

Boots a Debian kernel under QEMU/TCG (no /dev/kvm needed on the host) with an AMD CPU model
that has SVM + NPT, loads kvm_amd in that L1 guest, and runs COMMAND there as root in a chroot
of the host's root filesystem (shared read-only over 9p), so the host's binaries run unchanged.
The repository (and every --rw DIR) is shared read-write at the same path; /tmp, /run, /var/tmp
and /dev/shm are the guest's own tmpfs. The guest has THP (enabled=always, shmem_enabled=advise),
so vmcompact's private huge=always pool tmpfs works. VMC_*, VMCOMPACT_*, ASAN_OPTIONS,
UBSAN_OPTIONS and MESON_TESTTHREADS pass through to COMMAND. Exit status: COMMAND's (125 if the
guest never reported one, e.g. it crashed or hit --timeout).

Everything is emulated: the L1 guest boots in ~15 s here; KVM guests (L2) run under NPT emulated
by TCG, far slower than on real KVM: functional checks hold, timing checks (start-up under 2 s,
a run within a test's own timeout, SIGTERM before the handler is installed) fail.

options:
  --mem SIZE        L1 guest RAM, QEMU syntax (4G)
  --smp N           L1 vCPUs (1: with 2, the L1 kernel panicked under TCG twice on a loaded host)
  --cpu MODEL       QEMU CPU model (max,-la57: every feature TCG has, AMD vendor, SVM + NPT)
  --rw DIR          also share DIR read-write (repeatable; the repository is always shared)
  --cwd DIR         working directory for COMMAND (the current directory)
  --timeout SECS    kill QEMU after SECS (0: none; default 0)
  --kvm-args ARGS   kvm_amd parameters ("nested=0")
  --kernel-pkg PKG  Debian kernel package (newest linux-image-6.*+deb12-amd64-unsigned, else
                    linux-image-amd64's dependency); downloaded with apt-get download, extracted
                    with dpkg-deb into the cache, never installed
  --cache DIR       kernel + initramfs cache ($NESTED_KVM_CACHE, else /var/tmp/nested-kvm)
  --verbose         show the guest kernel's console messages
  --tty             give COMMAND the serial console as its terminal (default: stdin /dev/null,
                    stdout+stderr one pipe, so tools print no progress spinners)
  -h, --help        this text

examples:
  scripts/nested-kvm.sh -- sh -c 'ls -l /dev/kvm'
  scripts/nested-kvm.sh -- build/vmm/vmcompact run --mem 64M --workload verify --json
  scripts/nested-kvm.sh --rw /var/tmp/b -- meson test -C /var/tmp/b --no-rebuild --suite kvm --timeout-multiplier 3

Needs on the host: qemu-system-x86, busybox-static, cpio, xz-utils, kmod (modinfo), apt-get access
to the Debian archive for the first run. Changes nothing host-global.
EOF
}

repo=$(cd "$(dirname "$0")/.." && pwd)
mem=4G smp=1 cpu="max,-la57" cwd=$PWD timeout=0 kvm_args="nested=0" kpkg="" verbose=0 tty=0
cache=${NESTED_KVM_CACHE:-/var/tmp/nested-kvm}
rw=("$repo")
while [ $# -gt 0 ]; do
	case "$1" in
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--cpu) cpu=$2; shift 2 ;;
	--rw) rw+=("$(cd "$2" && pwd)"); shift 2 ;;
	--cwd) cwd=$(cd "$2" && pwd); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--kvm-args) kvm_args=$2; shift 2 ;;
	--kernel-pkg) kpkg=$2; shift 2 ;;
	--cache) cache=$2; shift 2 ;;
	--verbose) verbose=1; shift ;;
	--tty) tty=1; shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	-*) echo "nested-kvm.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
case "$cwd" in /*) ;; *) echo "nested-kvm.sh: --cwd must be absolute" >&2; exit 2 ;; esac

for tool in qemu-system-x86_64 cpio xz modinfo dpkg-deb apt-get; do
	command -v "$tool" >/dev/null || { echo "nested-kvm.sh: '$tool' is missing (apt-get install qemu-system-x86 cpio xz-utils kmod)" >&2; exit 2; }
done
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then   # ldd fails on a static binary
	echo "nested-kvm.sh: needs a static busybox (apt-get install busybox-static)" >&2
	exit 2
fi

log() { echo "nested-kvm.sh: $*" >&2; }

# ---- kernel: download + extract once into the cache ----
if [ -z "$kpkg" ]; then
	kpkg=$(apt-cache search --names-only '^linux-image-6\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64-unsigned$' 2>/dev/null |
		awk '{print $1}' | sort -V | tail -1)
	if [ -z "$kpkg" ]; then
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[ -n "$kpkg" ] || { log "no Debian kernel package found (apt-get update?); pass --kernel-pkg"; exit 2; }
fi
kdir=$cache/$kpkg
mkdir -p "$cache"
if [ ! -f "$kdir/.done" ]; then
	log "fetching $kpkg into $kdir"
	rm -rf "$kdir" && mkdir -p "$kdir/deb"
	(cd "$kdir/deb" && apt-get download "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2)
	deb=$(ls "$kdir"/deb/*.deb)
	# Only the kernel image and the module trees the guest needs (9p, kvm, their dependencies).
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards \
		'./boot/vmlinuz-*' './boot/config-*' './lib/modules/*/kernel/fs/9p' './lib/modules/*/kernel/net/9p' \
		'./lib/modules/*/kernel/fs/netfs' './lib/modules/*/kernel/fs/fscache' './lib/modules/*/kernel/virt' \
		'./lib/modules/*/kernel/arch/x86/kvm' './lib/modules/*/kernel/drivers/crypto/ccp' 2>/dev/null || true
	rm -rf "$kdir/deb"
	ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 || { log "no vmlinuz in $kpkg"; exit 1; }
	touch "$kdir/.done"
fi
vmlinuz=$(find "$kdir/boot" -name "vmlinuz-*" | head -1)
kver=${vmlinuz##*/vmlinuz-}
mdir=$kdir/lib/modules/$kver

# ---- initramfs: static busybox, the modules (dependency order), /init; built once ----
initrd=$kdir/initrd.cpio.gz
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
	log "building $initrd"
	root=$(mktemp -d "$cache/initrd.XXXXXX")
	mkdir -p "$root"/{bin,dev,proc,sys,newroot,lib/modules}
	cp "$busybox" "$root/bin/busybox"
	order=()
	add_mod() {   # depth-first: dependencies before the module
		local name=$1 f dep
		f=$(find "$mdir" -name "$name.ko*" | head -1)
		[ -n "$f" ] || f=$(find "$mdir" -name "${name//_/-}.ko*" | head -1)
		[ -n "$f" ] || return 0     # built in (or absent): nothing to load
		for o in "${order[@]}"; do [ "$o" = "$f" ] && return 0; done
		for dep in $(modinfo -F depends "$f" | tr ',' ' '); do add_mod "$dep"; done
		order+=("$f")
	}
	for m in virtio_pci 9pnet_virtio 9p kvm_amd; do add_mod "$m"; done
	: > "$root/lib/modules/order"
	for f in "${order[@]}"; do
		b=$(basename "$f"); b=${b%.xz}; b=${b%.zst}; b=${b%.gz}
		case "$f" in
		*.xz) xz -dc "$f" > "$root/lib/modules/$b" ;;
		*.zst) zstd -qdc "$f" > "$root/lib/modules/$b" ;;
		*.gz) gzip -dc "$f" > "$root/lib/modules/$b" ;;
		*) cp "$f" "$root/lib/modules/$b" ;;
		esac
		echo "$b" >> "$root/lib/modules/order"
	done
	cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }   # value of NAME= on the command line
kvm_args=$(arg nkvm.kvm_args | tr ',' ' ')
for m in $(cat /lib/modules/order); do
	case "$m" in
	kvm-amd.ko) insmod /lib/modules/$m $kvm_args || echo "nested-kvm: insmod $m failed" ;;
	*) insmod /lib/modules/$m || echo "nested-kvm: insmod $m failed" ;;
	esac
done
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,ro,cache=loose hostroot /newroot || { echo "nested-kvm: cannot mount the host root"; poweroff -f; }
for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mkdir -p /newroot/run/nested-kvm
mount -t 9p -o $o state /newroot/run/nested-kvm
i=0
while read -r dir; do
	mkdir -p "/newroot$dir" 2>/dev/null
	mount -t 9p -o $o,cache=none rw$i "/newroot$dir" || echo "nested-kvm: cannot mount $dir"
	i=$((i + 1))
done < /newroot/run/nested-kvm/rw
# THP for the pool (the guest's own settings).
echo always > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null
echo 1 > /proc/sys/vm/overcommit_memory
hostname nested-kvm
chroot /newroot /bin/bash /run/nested-kvm/run.sh
echo $? > /newroot/run/nested-kvm/rc
sync
grep -q quiet /proc/cmdline && echo 0 > /proc/sys/kernel/printk
poweroff -f
EOF
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$root"
fi

# ---- per-run state: the command, the rw list, the exit status ----
state=$(mktemp -d /var/tmp/nested-kvm-run.XXXXXX)
trap 'rm -rf "$state"' EXIT
printf '%s\n' "${rw[@]}" > "$state/rw"
{
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb'
	# The project's knobs and the sanitizers' options pass through.
	while IFS='=' read -r name _; do
		case "$name" in VMC_*|VMCOMPACT_*|ASAN_OPTIONS|UBSAN_OPTIONS|MESON_TESTTHREADS)
			printf 'export %s=%q\n' "$name" "${!name}" ;;
		esac
	done < <(env)
	echo '[ -e /dev/kvm ] || { echo "nested-kvm: no /dev/kvm in the guest:"; dmesg | grep -iE "kvm|svm" | tail; }'
	printf 'cd %q || exit 125\n' "$cwd"
	if [ "$tty" = 1 ]; then
		printf 'exec'; printf ' %q' "$@"; echo
	else   # stdout/stderr a pipe (no progress spinners on the serial console), status kept
		printf '{ ('; printf ' %q' "$@"; printf ' ) </dev/null; echo $? > /run/nested-kvm/cmd-rc; } 2>&1 | cat\n'
		# shellcheck disable=SC2016  # expands in the guest
		echo 'exit $(cat /run/nested-kvm/cmd-rc 2>/dev/null || echo 125)'
	fi
} > "$state/run.sh"

# shellcheck disable=SC2054  # commas are QEMU's option syntax
args=(-machine q35 -accel tcg,thread=multi,tb-size=512 -cpu "$cpu" -m "$mem" -smp "$smp"
	-nodefaults -display none -serial stdio -no-reboot -kernel "$vmlinuz" -initrd "$initrd"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$state,mount_tag=state,security_model=none")
i=0
for d in "${rw[@]}"; do
	args+=(-virtfs "local,path=$d,mount_tag=rw$i,security_model=none,multidevs=remap")
	i=$((i + 1))
done
quiet="quiet loglevel=1"
[ "$verbose" = 1 ] && quiet=""
args+=(-append "console=ttyS0 panic=-1 $quiet mitigations=off tsc=reliable nkvm.kvm_args=${kvm_args// /,}")

log "booting $kver ($cpu, $mem, $smp vCPUs) under TCG; command: $*"
t0=$SECONDS
set +e
if [ "$timeout" != 0 ]; then
	timeout --foreground -k 10 "$timeout" qemu-system-x86_64 "${args[@]}" < /dev/null
else
	qemu-system-x86_64 "${args[@]}" < /dev/null
fi
qrc=$?
set -e
if [ -f "$state/rc" ]; then
	rc=$(cat "$state/rc")
	log "guest command exited $rc after $((SECONDS - t0)) s"
	exit "$rc"
fi
log "no exit status from the guest (qemu exit $qrc after $((SECONDS - t0)) s)"
exit 125

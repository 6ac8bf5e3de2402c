#!/usr/bin/env bash
# setup.sh: install vmcompact's build dependencies from Debian and build it (idempotent).
#
#   scripts/setup.sh                     install packages (if missing) and build into ./build
#   scripts/setup.sh --raise-map-count[=N]  also raise vm.max_map_count (host-global!) to N
#                                        (default 1048576) so that large scattered guests fit;
#                                        prints what it changes and how to undo it
#   scripts/setup.sh --no-build          only install packages
set -euo pipefail

cd "$(dirname "$0")/.."
build=1
raise=0
want=1048576
for arg in "$@"; do
	case "$arg" in
	--raise-map-count) raise=1 ;;
	--raise-map-count=*)
		raise=1
		want=${arg#*=}
		case "$want" in ''|*[!0-9]*) echo "setup.sh: --raise-map-count=N needs a number" >&2; exit 2 ;; esac
		;;
	--no-build) build=0 ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
	esac
done

# qemu-system-x86: boots the guest agent through its PVH entry (tests/qemu, guest-agent/README.md).
# libvirt-daemon(-driver-qemu), libvirt-clients, libvirt-dev: `vmcompact stat|defrag|watch --domain`
# (vmm/qemu) and a private libvirtd for tests (scripts/libvirt-session.sh); python3 reads JSON in tests.
packages=(gcc meson ninja-build pkg-config libjson-c-dev socat qemu-system-x86
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev python3)
# liburing-dev: the snapshot I/O engine (vmm/snapshot, io_uring with registered staging buffers).
packages+=(liburing-dev)
# clang + its runtime (libFuzzer, sanitizers): the fuzz targets (scripts/fuzz.sh, CI's brief run).
packages+=(clang libclang-rt-14-dev)
# systemtap-sdt-dev: <sys/sdt.h> for the USDT trace probes (README 'Tracing'); gnuplot-nox: the
# plots of `vmcompact experiment`.
packages+=(systemtap-sdt-dev gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	echo "setup.sh: packages present (${packages[*]})"
fi

if [ ! -e /dev/kvm ]; then
	echo "setup.sh: warning: /dev/kvm is missing; vmcompact builds but cannot run guests here" >&2
fi

# A scattered guest needs about one mapping per 4 KiB page: 1 GiB at --age 0.9 needs ~236k,
# the default vm.max_map_count is 65530. We never change it unless asked to.
have=$(cat /proc/sys/vm/max_map_count)
if [ "$raise" = 1 ]; then
	if [ "$have" -lt "$want" ]; then
		echo "setup.sh: raising vm.max_map_count $have -> $want (host-global; undo with: sysctl -w vm.max_map_count=$have)"
		sysctl -q -w vm.max_map_count=$want
	else
		echo "setup.sh: vm.max_map_count is $have (>= $want), unchanged"
	fi
elif [ "$have" -lt "$want" ]; then
	echo "setup.sh: note: vm.max_map_count is $have; large aged guests (e.g. 1G --age 0.9) need more."
	echo "          Raise it explicitly with: scripts/setup.sh --raise-map-count  (or sysctl -w vm.max_map_count=$want)"
fi

if [ "$build" = 1 ]; then
	if [ ! -f build/build.ninja ]; then
		meson setup build --buildtype=release >/dev/null
	fi
	ninja -C build >/dev/null
	echo "setup.sh: built build/vmm/vmcompact"
fi

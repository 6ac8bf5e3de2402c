#!/usr/bin/env bash
# render-domain.sh: fill agent-domain.xml.in for one RAM backing and print the domain XML.
#
#   scripts/libvirt/render-domain.sh NAME BACKING [MEM_MIB] [CPUS] [WORKLOAD] [KERNEL] [SERIAL_LOG]
#
# BACKING: memfd (4 KiB shmem pages), anon-thp (anonymous RAM, THP), shmem-thp (a file in the
# daemon's memory_backing_dir, a huge=always tmpfs with libvirt-session.sh), hugetlbfs (needs
# reserved 2 MiB pages). Domain type 'kvm' when /dev/kvm exists, else 'qemu' (TCG).
# KERNEL defaults to build/guest-agent/vmcompact-agent, SERIAL_LOG to /tmp/NAME.serial.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 2 ] || { sed -n '4,9p' "$0" >&2; exit 2; }
name=$1
backing=$2
mem=${3:-256}
cpus=${4:-1}
workload=${5:-verify:passes=3}
kernel=${6:-$root/build/guest-agent/vmcompact-agent}
serial=${7:-/tmp/$name.serial}

case "$name" in ''|*[!A-Za-z0-9_.-]*) echo "render-domain.sh: bad domain name '$name'" >&2; exit 2 ;; esac
case "$mem$cpus" in *[!0-9]*) echo "render-domain.sh: MEM_MIB and CPUS are numbers" >&2; exit 2 ;; esac
case "$backing" in
memfd) mb="<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>" ;;
anon-thp) mb="<memoryBacking><source type='anonymous'/></memoryBacking>" ;;
shmem-thp) mb="<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>" ;;
hugetlbfs)
	free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	need=$(( (mem + 1) / 2 ))
	if [ "${free:-0}" -lt "$need" ]; then
		echo "render-domain.sh: hugetlbfs backing needs $need free 2 MiB huge pages, HugePages_Free is ${free:-0} (sysctl vm.nr_hugepages=$need)" >&2
		exit 3
	fi
	mb="<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>" ;;
*) echo "render-domain.sh: unknown backing '$backing' (memfd, anon-thp, shmem-thp, hugetlbfs)" >&2; exit 2 ;;
esac
type=qemu
[ -e /dev/kvm ] && type=kvm
emulator=$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64)
esc() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e "s/'/\&apos;/g" -e 's/[|]/\\|/g'; }
sed -e "s|@DOMAIN_TYPE@|$type|" -e "s|@NAME@|$name|" -e "s|@MEM_MIB@|$mem|" -e "s|@CPUS@|$cpus|" \
    -e "s|@MEMORY_BACKING@|$mb|" -e "s|@KERNEL@|$(esc "$kernel")|" -e "s|@WORKLOAD@|$(esc "$workload")|" \
    -e "s|@EMULATOR@|$emulator|" -e "s|@SERIAL_LOG@|$(esc "$serial")|" "$here/agent-domain.xml.in"

#!/usr/bin/env bash
# libvirt-session.sh: a private libvirt daemon for vmcompact's QEMU tests and demos, without editing host configuration.
#
#   scripts/libvirt-session.sh start [DIR]   start libvirtd; prints the connection URI
#   scripts/libvirt-session.sh stop [DIR]    stop it (its domains are destroyed with it)
#   scripts/libvirt-session.sh uri [DIR]     print the URI (export LIBVIRT_DEFAULT_URI=$(... uri))
#   scripts/libvirt-session.sh status [DIR]  exit 0 if it runs
#
# DIR defaults to $VMCOMPACT_LIBVIRT_DIR, else ${XDG_RUNTIME_DIR:-/tmp}/vmcompact-libvirt.
#
# As root, libvirtd always runs privileged ("qemu:///system" semantics; libvirt has no root
# session daemon), and a privileged libvirtd reads /etc/libvirt and needs a libvirt-qemu user.
# So the daemon runs in its own mount namespace where DIR's files stand in for /etc/libvirt,
# /run/libvirt, /var/{lib,log,cache}/libvirt, /etc/passwd and /etc/group (copies plus the
# libvirt-qemu user). Its qemu.conf runs QEMU as root (so a 0600 /dev/kvm works), without
# cgroups, namespaces or a security driver, logging to files. Its socket is DIR/sock/libvirt-sock,
# reached with the URI qemu:///system?socket=DIR/sock/libvirt-sock. Nothing outside DIR changes.
# shmem-thp domains (<source type='file'/>) get their RAM files on a private huge=always tmpfs.
set -euo pipefail

cmd=${1:-}
dir=${2:-${VMCOMPACT_LIBVIRT_DIR:-${XDG_RUNTIME_DIR:-/tmp}/vmcompact-libvirt}}
uri="qemu:///system?socket=$dir/sock/libvirt-sock"
pidfile="$dir/libvirtd.pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

write_config() {
	mkdir -p "$dir"/{etc/qemu,run,lib,log,cache,sock,hugemem}
	cp /etc/passwd "$dir/passwd"
	cp /etc/group "$dir/group"
	grep -q '^libvirt-qemu:' "$dir/passwd" ||
		echo 'libvirt-qemu:x:64055:64055:libvirt (vmcompact private namespace):/var/lib/libvirt:/usr/sbin/nologin' >>"$dir/passwd"
	grep -q '^libvirt-qemu:' "$dir/group" || echo 'libvirt-qemu:x:64055:' >>"$dir/group"
	grep -q '^libvirt:' "$dir/group" || echo 'libvirt:x:64056:' >>"$dir/group"
	grep -q '^kvm:' "$dir/group" || echo 'kvm:x:64057:' >>"$dir/group"
	cat >"$dir/etc/qemu.conf" <<-CONF
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	cgroup_controllers = [ ]
	namespaces = [ ]
	stdio_handler = "file"
	memory_backing_dir = "$dir/hugemem"
	CONF
	cat >"$dir/etc/libvirtd.conf" <<-CONF
	unix_sock_dir = "$dir/sock"
	unix_sock_rw_perms = "0700"
	unix_sock_ro_perms = "0700"
	auth_unix_ro = "none"
	auth_unix_rw = "none"
	log_outputs = "3:file:$dir/libvirtd.log"
	CONF
}

start() {
	if running; then
		echo "$uri"
		return 0
	fi
	[ "$(id -u)" = 0 ] || { echo "libvirt-session.sh: must run as root" >&2; exit 1; }
	command -v libvirtd >/dev/null || { echo "libvirt-session.sh: libvirtd is not installed (scripts/setup.sh)" >&2; exit 1; }
	command -v unshare >/dev/null || { echo "libvirt-session.sh: unshare (util-linux) is missing" >&2; exit 1; }
	write_config
	rm -f "$dir/sock/libvirt-sock"
	unshare --mount --propagation private sh -c '
		d=$1
		mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt
		mount --bind "$d/passwd" /etc/passwd && mount --bind "$d/group" /etc/group &&
		mount --bind "$d/etc" /etc/libvirt && mount --bind "$d/run" /run/libvirt &&
		mount --bind "$d/lib" /var/lib/libvirt && mount --bind "$d/log" /var/log/libvirt &&
		mount --bind "$d/cache" /var/cache/libvirt &&
		mount -t tmpfs -o huge=always,mode=0700 vmcompact-hugemem "$d/hugemem" &&
		exec libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file "$d/libvirtd.pid"
	' sh "$dir"
	for _ in $(seq 50); do
		[ -S "$dir/sock/libvirt-sock" ] && running && { echo "$uri"; return 0; }
		sleep 0.1
	done
	echo "libvirt-session.sh: libvirtd did not come up; see $dir/libvirtd.log" >&2
	tail -3 "$dir/libvirtd.log" >&2 2>/dev/null || true
	exit 1
}

stop() {
	if ! running; then
		echo "libvirt-session.sh: not running ($dir)"
		return 0
	fi
	pid=$(cat "$pidfile")
	if command -v virsh >/dev/null; then
		for d in $(virsh -c "$uri" list --name 2>/dev/null); do
			virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
		done
	fi
	kill "$pid"
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$pidfile"
	echo "libvirt-session.sh: stopped ($dir)"
}

case "$cmd" in
start) start ;;
stop) stop ;;
uri) echo "$uri" ;;
status) running ;;
-h|--help|'') sed -n '2,19p' "$0"; [ -n "$cmd" ] ;;
*) echo "libvirt-session.sh: unknown command '$cmd' (start, stop, uri, status)" >&2; exit 2 ;;
esac

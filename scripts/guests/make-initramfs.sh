#!/usr/bin/env bash
# Builds the busybox initramfs of tsemu's test guests.
#
# Usage: make-initramfs.sh BUSYBOX_STATIC.deb OUT.cpio.gz
#
# The archive (cpio newc, gzip) holds Debian's static busybox as /bin/busybox, empty
# /dev /proc /sys /tmp /root, and /init, a busybox shell script that:
#   1. mounts devtmpfs on /dev and reopens its stdio on /dev/console (so the archive
#      needs no device nodes), installs the applet links, mounts proc and sysfs;
#   2. prints the marker line "TSEMU-BOOT-OK <kernel release> <cpus>" on the console;
#   3. with tsemu.test=poweroff on the kernel command line powers off at once,
#      otherwise runs an interactive shell on the console's tty (setsid cttyhack sh)
#      and powers off when the shell exits.
# Every entry is owned by root with mtime 0 and the gzip stream has no name or time,
# so the same busybox package always gives the same bytes. Needs dpkg-deb, cpio, gzip.
set -euo pipefail

die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: ${0##*/} BUSYBOX_STATIC.deb OUT.cpio.gz"
deb=$1
out=$2
[ -s "$deb" ] || die "$deb: no such package file"
for tool in dpkg-deb cpio gzip; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install ${tool/dpkg-deb/dpkg})"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"
busybox=
for candidate in usr/bin/busybox bin/busybox; do
  [ -f "$work/deb/$candidate" ] && busybox="$work/deb/$candidate" && break
done
[ -n "$busybox" ] || die "$deb holds no bin/busybox or usr/bin/busybox"

root="$work/root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# tsemu test guest: mount, print the marker, then power off or serve a shell.
export PATH=/bin
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "TSEMU-BOOT-OK $(uname -r) $(nproc)"
case " $(cat /proc/cmdline) " in
  *" tsemu.test=poweroff "*) ;;
  *)
    echo "busybox shell on the console; exit it to power off"
    setsid cttyhack sh
    ;;
esac
poweroff -f
EOF
chmod 0755 "$root/init"

find "$root" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"

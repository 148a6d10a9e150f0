#!/usr/bin/env bash
# Builds the RISC-V root file system of the ssh scenario, with no emulation: Debian
# trixie's riscv64 busybox-static and dropbear-bin (with the libraries apt resolves for
# it) unpacked with `dpkg -x`, an ext4 image made with `mke2fs -d`, converted to qcow2.
#
# Usage: build-riscv64-rootfs.sh [--size SIZE] [OUT_DIR]
#   OUT_DIR defaults to .cache/guests/riscv64-rootfs (gitignored). It ends up with
#     base.qcow2              the root file system (ext4, label tsemu-root, SIZE, default 64M)
#     id_ed25519{,.pub}       the client key whose public half the image authorizes for root
#     versions                the package versions and the recipe hash it was made with
#     .apt/                   the private apt state (see debian-apt.sh)
#   Up to date (the files exist and `versions` names this recipe and these packages):
#   nothing is rebuilt.
#
# The guest boots with root=/dev/vda rw (the bundled kernel has ext4 and virtio built in).
# Its /sbin/init, a busybox shell script run as PID 1:
#   1. mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /tmp and /run;
#   2. brings up lo and eth0 and asks DHCP for an address (udhcpc; the lease's address,
#      router and DNS servers are configured by /etc/udhcpc/default.script);
#   3. starts dropbear on port 22 (host keys made on first use, -R), root logs in with
#      the authorized key only;
#   4. prints "TSEMU-ROOTFS-OK <address>" on the console; with tsemu.test=poweroff on the
#      command line it powers off at once, else serves a shell on the console and powers
#      off when that shell exits.
# Debian's packages are merged-/usr: /bin, /sbin and /lib are links into /usr. Every file
# is owned by root (mke2fs -d copies owners: run as root). Needs: dpkg-deb, mke2fs
# (e2fsprogs), qemu-img (qemu-utils), ssh-keygen (openssh-client).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=debian-apt.sh
. "$here/debian-apt.sh"

size=64M
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=${2:?--size needs a size}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) debian_die "unknown option $1 (usage: ${0##*/} [--size SIZE] [OUT_DIR])" ;;
    *) [ -z "$out" ] && out=$1 || debian_die "more than one OUT_DIR"; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || debian_die "run as root: mke2fs -d gives the image's files their owners on the host"
for tool in dpkg-deb mke2fs qemu-img ssh-keygen; do
  command -v "$tool" >/dev/null || debian_die "$tool is not installed"
done
out=${out:-$here/../../.cache/guests/riscv64-rootfs}
mkdir -p "$out"
out=$(cd "$out" && pwd)
state="$out/.apt"

debian_apt_prepare "$state" riscv64 trixie
# The packages with everything they depend on, as apt would install them on an empty system.
mapfile -t packages < <(debian_apt "$state" apt-get install -s --no-install-recommends busybox-static dropbear-bin |
  awk '/^Inst / { v = $3; sub(/^\(/, "", v); print $2 "=" v }')
[ "${#packages[@]}" -gt 0 ] || debian_die "apt resolved no packages for busybox-static dropbear-bin"
recipe=$(cat "$0" | sha256sum | cut -c1-16)
versions="recipe $recipe size $size
$(printf '%s\n' "${packages[@]}")"
if [ -s "$out/base.qcow2" ] && [ -s "$out/id_ed25519" ] && [ "$(cat "$out/versions" 2>/dev/null)" = "$versions" ]; then
  echo "${0##*/}: $out is up to date" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"
for deb in $(debian_download "$state" "$state/debs" "${packages[@]}"); do
  dpkg-deb -x "$deb" "$root"
done
# Merged /usr: what a package put in /bin, /sbin or /lib moves under /usr, then the links.
for dir in bin sbin lib; do
  mkdir -p "$root/usr/$dir"
  if [ -d "$root/$dir" ] && [ ! -L "$root/$dir" ]; then
    cp -a "$root/$dir/." "$root/usr/$dir/"
    rm -rf "${root:?}/$dir"
  fi
  ln -s "usr/$dir" "$root/$dir"
done
[ -x "$root/usr/bin/busybox" ] || debian_die "busybox-static did not provide /usr/bin/busybox"
[ -x "$root/usr/sbin/dropbear" ] || debian_die "dropbear-bin did not provide /usr/sbin/dropbear"
mkdir -p "$root"/{dev,proc,sys,tmp,run,root/.ssh,etc/dropbear,etc/udhcpc,var/log,home}
chmod 0700 "$root/root" "$root/root/.ssh"
chmod 1777 "$root/tmp"

# The busybox applets init, the udhcpc hook and a shell session use get links in /usr/bin
# (the binary is riscv64: `busybox --install` cannot run here), except where a package
# put a real program.
for applet in sh ash mountpoint mount umount mkdir ls cat echo ip udhcpc ifconfig route sleep poweroff reboot halt \
  setsid cttyhack hostname uname dd sync wget httpd nc sha256sum md5sum head tail grep sed awk ps kill \
  rm cp mv ln touch chmod chown df du free uptime date env id whoami nslookup ping printf test true false \
  seq wc tr cut sort uniq tee find xargs dmesg mdev mknod stty tty clear vi less more which nproc; do
  [ -e "$root/usr/bin/$applet" ] || ln -s busybox "$root/usr/bin/$applet"
done

cat >"$root/etc/passwd" <<'EOF'
root:*:0:0:root:/root:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
EOF
echo /bin/sh >"$root/etc/shells"
echo tsemu-rootfs >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

rm -f "$out/id_ed25519" "$out/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C tsemu-rootfs -f "$out/id_ed25519"
install -m 0600 "$out/id_ed25519.pub" "$root/root/.ssh/authorized_keys"

cat >"$root/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# udhcpc's hook: configure the lease on $interface (address, default route, DNS).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
EOF
chmod 0755 "$root/etc/udhcpc/default.script"

cat >"$root/sbin/init" <<'EOF'
#!/bin/sh
# tsemu root file system: mount, network over DHCP, dropbear, marker, then a shell or poweroff.
export PATH=/usr/sbin:/usr/bin HOME=/root
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname -F /etc/hostname
ip link set lo up
udhcpc -i eth0 -s /etc/udhcpc/default.script -q -n -t 5 -T 2 || echo "tsemu-rootfs: no DHCP lease on eth0"
dropbear -R -s -p 22
address=$(ip -4 -o addr show dev eth0 | awk '{ print $4 }')
echo "TSEMU-ROOTFS-OK ${address:-none}"
case " $(cat /proc/cmdline) " in
  *" tsemu.test=poweroff "*) ;;
  *)
    echo "busybox shell on the console; exit it to power off"
    setsid cttyhack sh
    ;;
esac
sync
poweroff -f
EOF
chmod 0755 "$root/sbin/init"

find "$root" -exec touch -h -d @0 {} +
mke2fs -q -F -t ext4 -L tsemu-root -E root_owner=0:0 -d "$root" "$work/root.ext4" "$size" ||
  debian_die "mke2fs -d failed"
qemu-img convert -f raw -O qcow2 "$work/root.ext4" "$out/base.qcow2.tmp"
mv "$out/base.qcow2.tmp" "$out/base.qcow2"
echo "$versions" >"$out/versions"
echo "${0##*/}: $out/base.qcow2 ($size ext4: $(printf '%s ' "${packages[@]}"))" >&2

#!/usr/bin/env bash
# Fetches the Debian riscv64 test guest: trixie's distribution kernel and a busybox
# initramfs.
#
# Usage: fetch-debian-riscv64.sh [--refresh] [OUT_DIR]
#   OUT_DIR defaults to .cache/guests/debian-riscv64 (gitignored, and outside the npm
#   package's files). It ends up with
#     Image              the kernel: /boot/vmlinux-* of linux-image-6.12.*-riscv64, which is
#                        already the flat RISC-V Image that --kernel takes
#     initramfs.cpio.gz  busybox-static + /init (see make-initramfs.sh)
#     versions           the package versions and the recipe hash they were made with
#     .apt/              the private apt state (see debian-apt.sh)
#
# The kernel package is the one trixie's linux-image-riscv64 depends on. Up to date means
# the three files exist and `versions` names this recipe: then nothing is downloaded.
# --refresh asks the mirror for newer packages and rebuilds what changed. The downloaded
# .deb files are deleted once unpacked (the kernel's is over 100 MB; its modules are not
# needed yet).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=debian-apt.sh
. "$here/debian-apt.sh"

refresh=0
out=
for arg in "$@"; do
  case "$arg" in
    --refresh) refresh=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) debian_die "unknown option $arg (usage: ${0##*/} [--refresh] [OUT_DIR])" ;;
    *) [ -z "$out" ] && out=$arg || debian_die "more than one OUT_DIR" ;;
  esac
done
out=${out:-$here/../../.cache/guests/debian-riscv64}
mkdir -p "$out"
out=$(cd "$out" && pwd)

recipe=$(cat "$0" "$here/make-initramfs.sh" | sha256sum | cut -c1-16)
if [ "$refresh" = 0 ] && [ -s "$out/Image" ] && [ -s "$out/initramfs.cpio.gz" ] &&
  grep -qx "recipe $recipe" "$out/versions" 2>/dev/null; then
  echo "${0##*/}: $out is up to date ($(grep '^kernel ' "$out/versions" | cut -d' ' -f2-))"
  exit 0
fi

state="$out/.apt"
debian_apt_prepare "$state" riscv64 trixie

kernel_pkg=$(debian_apt "$state" apt-cache show --no-all-versions linux-image-riscv64 |
  sed -n 's/^Depends:.*\b\(linux-image-6\.12\.[^ ,]*-riscv64\)\b.*/\1/p' | head -1)
[ -n "$kernel_pkg" ] || debian_die "trixie's linux-image-riscv64 does not depend on a linux-image-6.12.*-riscv64 package"

read -r kernel_version _ <<<"$(debian_candidate "$state" "$kernel_pkg")"
read -r busybox_version _ <<<"$(debian_candidate "$state" busybox-static)"
[ -n "$kernel_version" ] && [ -n "$busybox_version" ] || debian_die "$kernel_pkg or busybox-static is missing from the mirror"
new_versions=$(printf 'kernel %s %s\nbusybox-static %s\nrecipe %s\n' \
  "$kernel_pkg" "$kernel_version" "$busybox_version" "$recipe")
if [ -s "$out/Image" ] && [ -s "$out/initramfs.cpio.gz" ] && [ "$new_versions" = "$(cat "$out/versions" 2>/dev/null)" ]; then
  echo "${0##*/}: $out is up to date ($kernel_pkg $kernel_version)"
  exit 0
fi

debs="$state/debs"
kernel_deb=$(debian_download "$state" "$debs" "$kernel_pkg=$kernel_version")
busybox_deb=$(debian_download "$state" "$debs" "busybox-static=$busybox_version")
unpack="$state/unpack"
rm -rf "$unpack" && mkdir -p "$unpack"
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -xf - -C "$unpack" --wildcards './boot/vmlinux-*'
vmlinux=$(find "$unpack/boot" -name 'vmlinux-*' | head -1)
[ -n "$vmlinux" ] || debian_die "$kernel_deb holds no /boot/vmlinux-*"
"$here/make-initramfs.sh" "$busybox_deb" "$out/initramfs.cpio.gz"
mv "$vmlinux" "$out/Image"
echo "$new_versions" >"$out/versions"
rm -rf "$unpack" "$kernel_deb" "$busybox_deb"
echo "${0##*/}: $out: Image ($kernel_pkg $kernel_version), initramfs.cpio.gz (busybox-static $busybox_version)"

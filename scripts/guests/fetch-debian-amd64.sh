#!/usr/bin/env bash
# Fetches the Debian amd64 test guest of the microvm machine: bookworm's distribution
# kernel and a busybox initramfs.
#
# Usage: fetch-debian-amd64.sh [--refresh] [OUT_DIR]
#   OUT_DIR defaults to .cache/guests/debian-amd64 (gitignored, and outside the npm
#   package's files). It ends up with
#     vmlinuz            the kernel: /boot/vmlinuz-* of linux-image-6.1.*-amd64, a bzImage
#                        that `tsemu run -M microvm --kernel` takes (its 8250 UART and ACPI
#                        are built in, so console=ttyS0 and poweroff need no module)
#     initramfs.cpio.gz  busybox-static + /init (see make-initramfs.sh): prints
#                        "TSEMU-BOOT-OK <release> <cpus>", powers off with tsemu.test=poweroff
#     versions           the package versions and the recipe hash they were made with
#     .apt/              the private apt state (see debian-apt.sh)
#
# The suite is bookworm whatever the machine runs: the mirror comes from the machine's
# own apt sources (debian-apt.sh), the suite name from here. The kernel package is the
# one bookworm's linux-image-amd64 depends on. Up to date means the three files exist
# and `versions` names this recipe: then nothing is downloaded. --refresh asks the
# mirror for newer packages and rebuilds what changed. The downloaded .deb files are
# deleted once unpacked (the kernel's is about 70 MB; its modules are not needed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=debian-apt.sh
. "$here/debian-apt.sh"

usage="usage: ${0##*/} [--refresh] [OUT_DIR]"
refresh=0
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --refresh) refresh=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' && exit 0 ;;
    -*) debian_die "unknown option $1 ($usage)" ;;
    *) [ -z "$out" ] || debian_die "more than one OUT_DIR ($usage)"; out=$1 ;;
  esac
  shift
done
out=${out:-$here/../../.cache/guests/debian-amd64}
mkdir -p "$out"
out=$(cd "$out" && pwd)
files=("$out/vmlinuz" "$out/initramfs.cpio.gz")
present() { [ -s "${files[0]}" ] && [ -s "${files[1]}" ]; }

recipe=$(cat "$0" "$here/make-initramfs.sh" | sha256sum | cut -c1-16)
if [ "$refresh" = 0 ] && present && grep -qx "recipe $recipe" "$out/versions" 2>/dev/null; then
  echo "${0##*/}: $out is up to date ($(grep '^kernel ' "$out/versions" | cut -d' ' -f2-))"
  exit 0
fi

state="$out/.apt"
debian_apt_prepare "$state" amd64 bookworm

# bookworm's metapackage depends on the signed image of the current ABI, e.g. linux-image-6.1.0-40-amd64.
kernel_pkg=$(debian_apt "$state" apt-cache show --no-all-versions linux-image-amd64 |
  sed -n 's/^Depends:.*\b\(linux-image-6\.1\.[^ ,]*-amd64\)\b.*/\1/p' | head -1)
[ -n "$kernel_pkg" ] || debian_die "bookworm's linux-image-amd64 does not depend on a linux-image-6.1.*-amd64 package"

read -r kernel_version _ <<<"$(debian_candidate "$state" "$kernel_pkg")"
read -r busybox_version _ <<<"$(debian_candidate "$state" busybox-static)"
[ -n "$kernel_version" ] && [ -n "$busybox_version" ] || debian_die "$kernel_pkg or busybox-static is missing from the mirror"
new_versions=$(printf 'kernel %s %s\nbusybox-static %s\nrecipe %s\n' \
  "$kernel_pkg" "$kernel_version" "$busybox_version" "$recipe")
if present && [ "$new_versions" = "$(cat "$out/versions" 2>/dev/null)" ]; then
  echo "${0##*/}: $out is up to date ($kernel_pkg $kernel_version)"
  exit 0
fi

debs="$state/debs"
kernel_deb=$(debian_download "$state" "$debs" "$kernel_pkg=$kernel_version")
busybox_deb=$(debian_download "$state" "$debs" "busybox-static=$busybox_version")
unpack="$state/unpack"
rm -rf "$unpack" && mkdir -p "$unpack"
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -xf - -C "$unpack" --wildcards './boot/vmlinuz-*'
vmlinuz=$(find "$unpack/boot" -name 'vmlinuz-*' | head -1)
[ -n "$vmlinuz" ] || debian_die "$kernel_deb holds no /boot/vmlinuz-*"
[ "$(dd if="$vmlinuz" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] || debian_die "$vmlinuz is not a bzImage (no HdrS setup header)"
"$here/make-initramfs.sh" "$busybox_deb" "$out/initramfs.cpio.gz"
mv "$vmlinuz" "$out/vmlinuz"
echo "$new_versions" >"$out/versions"
rm -rf "$unpack" "$kernel_deb" "$busybox_deb"
echo "${0##*/}: $out: vmlinuz ($kernel_pkg $kernel_version), initramfs.cpio.gz (busybox-static $busybox_version)"

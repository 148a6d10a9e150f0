# Sourced by fetch-debian-<arch>.sh: fetches a Debian distribution kernel and
# busybox-static for one architecture and suite, and builds the busybox initramfs,
# into OUT_DIR (default .cache/guests/debian-<arch>). The sourcing script sets:
#   guest_arch, guest_suite       e.g. riscv64 trixie
#   guest_meta                    the kernel metapackage, e.g. linux-image-riscv64
#   guest_kernel_re               sed regex of the versioned kernel package it depends on
#   guest_boot_glob               the kernel file under /boot in that package, e.g. 'vmlinux-*'
#   guest_kernel_name             the name the kernel gets in OUT_DIR (Image, vmlinuz)
#   guest_check_kernel FILE       a function that fails (debian_die) on a kernel it cannot use
# and passes its arguments: [--refresh] [OUT_DIR].
#
# Up to date means the kernel and initramfs exist and `versions` names this recipe
# (the hash of the fetch script, this file and make-initramfs.sh) and the candidate
# package versions: then nothing is downloaded. --refresh asks the mirror for newer
# packages. The downloaded .deb files are deleted once unpacked (modules are not needed).
# shellcheck shell=bash

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
out=${out:-$here/../../.cache/guests/debian-$guest_arch}
mkdir -p "$out"
out=$(cd "$out" && pwd)
files=("$out/$guest_kernel_name" "$out/initramfs.cpio.gz")
present() { [ -s "${files[0]}" ] && [ -s "${files[1]}" ]; }

recipe=$(cat "$0" "$here/debian-kernel-guest.sh" "$here/make-initramfs.sh" | sha256sum | cut -c1-16)
if [ "$refresh" = 0 ] && present && grep -qx "recipe $recipe" "$out/versions" 2>/dev/null; then
  echo "${0##*/}: $out is up to date ($(grep '^kernel ' "$out/versions" | cut -d' ' -f2-))"
  exit 0
fi

state="$out/.apt"
debian_apt_prepare "$state" "$guest_arch" "$guest_suite"

kernel_pkg=$(debian_apt "$state" apt-cache show --no-all-versions "$guest_meta" |
  sed -n "s/^Depends:.*\\b\\($guest_kernel_re\\)\\b.*/\\1/p" | head -1)
[ -n "$kernel_pkg" ] || debian_die "$guest_suite's $guest_meta does not depend on a package matching $guest_kernel_re"

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
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -xf - -C "$unpack" --wildcards "./boot/$guest_boot_glob"
kernel=$(find "$unpack/boot" -name "$guest_boot_glob" | head -1)
[ -n "$kernel" ] || debian_die "$kernel_deb holds no /boot/$guest_boot_glob"
guest_check_kernel "$kernel"
"$here/make-initramfs.sh" "$busybox_deb" "$out/initramfs.cpio.gz"
mv "$kernel" "$out/$guest_kernel_name"
echo "$new_versions" >"$out/versions"
rm -rf "$unpack" "$kernel_deb" "$busybox_deb"
echo "${0##*/}: $out: $guest_kernel_name ($kernel_pkg $kernel_version), initramfs.cpio.gz (busybox-static $busybox_version)"

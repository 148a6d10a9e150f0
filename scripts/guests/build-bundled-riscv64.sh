#!/usr/bin/env bash
# Builds tsemu's bundled RISC-V guest into fixtures/images/riscv64/ (committed):
#   Image.gz           a small Linux kernel: Debian's linux-source-6.1 configured by
#                      allnoconfig + bundled-riscv64.config, cross-compiled with
#                      gcc-riscv64-linux-gnu, flat RISC-V Image gzipped
#   initramfs.cpio.gz  Debian trixie's riscv64 busybox-static + /init (make-initramfs.sh)
#   README.md          what they are, the versions they were made from, how to remake them
#
# Usage: build-bundled-riscv64.sh [--jobs N]
#   The build tree lives in $TSEMU_BUILD_DIR (default ~/.cache/tsemu/bundled-riscv64):
#   the unpacked source (re-unpacked when the linux-source package changes), the
#   kernel objects (make is incremental, so a rerun only relinks what changed) and
#   the private apt state for busybox. The kernel build takes about 15 minutes on
#   two cores. Every option of the fragment is checked in the final .config: one that
#   Kconfig dropped (a missing dependency) is an error, not a silently smaller kernel.
#   Build metadata (user, host, time) is fixed so that equal inputs give equal bytes.
#
# Needs: linux-source-6.1 (installed with apt-get when missing and running as root),
# gcc-riscv64-linux-gnu, make, flex, bison, bc, cpio, xz-utils, dpkg-deb.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=debian-apt.sh
. "$here/debian-apt.sh"

jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) debian_die "unknown argument $1 (usage: ${0##*/} [--jobs N])" ;;
  esac
done

source_pkg=linux-source-6.1
fragment="$here/bundled-riscv64.config"
dest=$(cd "$here/../.." && pwd)/fixtures/images/riscv64
build=${TSEMU_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tsemu/bundled-riscv64}
cross=riscv64-linux-gnu-

for tool in "${cross}gcc" make flex bison bc cpio xz dpkg-deb; do
  command -v "$tool" >/dev/null || debian_die "$tool is not installed"
done
if ! dpkg-query -W -f='${Status}' "$source_pkg" 2>/dev/null | grep -q 'install ok installed'; then
  [ "$(id -u)" = 0 ] || debian_die "$source_pkg is not installed (apt-get install $source_pkg)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$source_pkg"
fi
source_version=$(dpkg-query -W -f='${Version}' "$source_pkg")
tarball=/usr/src/$source_pkg.tar.xz
[ -s "$tarball" ] || debian_die "$tarball is missing (reinstall $source_pkg)"

mkdir -p "$build"
tree="$build/$source_pkg"
if [ "$(cat "$build/source-version" 2>/dev/null)" != "$source_version" ]; then
  echo "${0##*/}: unpacking $source_pkg $source_version into $build" >&2
  rm -rf "$tree" "$build/out" "$build/source-version"
  tar -xf "$tarball" -C "$build"
  echo "$source_version" >"$build/source-version"
fi

kmake() {
  make -C "$tree" O="$build/out" ARCH=riscv CROSS_COMPILE="$cross" \
    KBUILD_BUILD_USER=tsemu KBUILD_BUILD_HOST=tsemu KBUILD_BUILD_VERSION=1 \
    KBUILD_BUILD_TIMESTAMP="$source_pkg $source_version" "$@"
}

KCONFIG_ALLCONFIG="$fragment" kmake -s allnoconfig
missing=$(grep -E '^(CONFIG_[A-Z0-9_]+=.*|# CONFIG_[A-Z0-9_]+ is not set)$' "$fragment" | while read -r line; do
  grep -qxF "$line" "$build/out/.config" || echo "  $line"
done)
[ -z "$missing" ] || debian_die "Kconfig did not take these options of $fragment:
$missing"

kmake -j"$jobs" Image
gcc_version=$("${cross}gcc" -dumpfullversion)
release=$(kmake -s kernelrelease)

state="$build/apt"
debian_apt_prepare "$state" riscv64 trixie
busybox_deb=$(debian_download "$state" "$state/debs" busybox-static)
busybox_version=$(dpkg-deb -f "$busybox_deb" Version)

mkdir -p "$dest"
gzip -n -9 <"$build/out/arch/riscv/boot/Image" >"$dest/Image.gz.tmp"
mv "$dest/Image.gz.tmp" "$dest/Image.gz"
"$here/make-initramfs.sh" "$busybox_deb" "$dest/initramfs.cpio.gz"

cat >"$dest/README.md" <<EOF
# The bundled RISC-V guest

\`tsemu run\` boots this guest when no \`--kernel\` is given; fast tests use it too.
Made by \`scripts/guests/build-bundled-riscv64.sh\` (do not edit by hand; rerun it).

| File | What | Made from |
|---|---|---|
| \`Image.gz\` | Linux $release, flat RISC-V Image, gzipped ($(stat -c %s "$build/out/arch/riscv/boot/Image") bytes unpacked) | Debian \`$source_pkg\` $source_version, \`allnoconfig\` + \`scripts/guests/bundled-riscv64.config\`, gcc-riscv64-linux-gnu $gcc_version |
| \`initramfs.cpio.gz\` | busybox shell; \`/init\` prints \`TSEMU-BOOT-OK <release> <cpus>\` | Debian trixie riscv64 \`busybox-static\` $busybox_version, \`scripts/guests/make-initramfs.sh\` |

The kernel runs on QEMU's and tsemu's \`virt\` machine under an SBI firmware: 16550 console
(\`console=ttyS0\`) and SBI console (\`earlycon=sbi\`), PLIC, goldfish RTC, syscon poweroff and
reboot, SMP (up to 8 harts), virtio-mmio block, network, console and entropy (virtio-rng), and
ext4 with PTYs for a root file system on a virtio disk (the ssh scenario), all built in (no modules).
With \`tsemu.test=poweroff\` on the command line \`/init\` powers off right after the marker;
otherwise it runs a shell on the console and powers off when the shell exits. QEMU's \`-kernel\`
does not unpack gzip: give it \`gunzip -c Image.gz\`.
EOF
echo "${0##*/}: $dest: Image.gz ($release), initramfs.cpio.gz (busybox-static $busybox_version)"

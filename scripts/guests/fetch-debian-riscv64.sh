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
# The kernel package is the one trixie's linux-image-riscv64 depends on. The fetching
# itself, the up-to-date check and --refresh are debian-kernel-guest.sh's.
set -euo pipefail

guest_arch=riscv64
guest_suite=trixie
guest_meta=linux-image-riscv64
guest_kernel_re='linux-image-6\.12\.[^ ,]*-riscv64'
guest_boot_glob='vmlinux-*'
guest_kernel_name=Image
guest_check_kernel() { :; }
# shellcheck source=debian-kernel-guest.sh
. "$(dirname "$0")/debian-kernel-guest.sh"

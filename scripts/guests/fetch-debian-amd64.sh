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
# one bookworm's linux-image-amd64 depends on. The fetching itself, the up-to-date check
# and --refresh are debian-kernel-guest.sh's.
set -euo pipefail

guest_arch=amd64
guest_suite=bookworm
guest_meta=linux-image-amd64
guest_kernel_re='linux-image-6\.1\.[^ ,]*-amd64'
guest_boot_glob='vmlinuz-*'
guest_kernel_name=vmlinuz
guest_check_kernel() {
  [ "$(dd if="$1" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ] || debian_die "$1 is not a bzImage (no HdrS setup header)"
}
# shellcheck source=debian-kernel-guest.sh
. "$(dirname "$0")/debian-kernel-guest.sh"

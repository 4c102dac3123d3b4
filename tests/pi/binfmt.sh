#!/usr/bin/env bash
# Make arm64 binaries run on this machine through Debian's qemu-user-static.
# The F flag (from Debian's binfmt.d file) makes the kernel open the emulator
# once, at registration, so a chroot needs no copy of it inside.
set -euo pipefail
mnt=/proc/sys/fs/binfmt_misc
if [ ! -e "$mnt/register" ]; then mount -t binfmt_misc binfmt_misc "$mnt"; fi
if [ ! -e "$mnt/qemu-aarch64" ]; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -r "$conf" ] || { echo "binfmt: $conf missing: apt-get install qemu-user-static" >&2; exit 1; }
  cat "$conf" >"$mnt/register"
fi
grep -q '^enabled' "$mnt/qemu-aarch64"

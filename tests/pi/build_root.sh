#!/usr/bin/env bash
# Build (or reuse) an arm64 Debian trixie root, the base of current Raspberry Pi
# OS, from Debian's own packages, and unpack it into the directory given.
#
#   tests/pi/build_root.sh DEST
#
# The first build runs debootstrap under qemu-user emulation and keeps a tarball
# in $DOORWATCH_CACHE (default /var/cache/doorwatch), outside the repository;
# later runs only unpack it. The tarball's name carries a hash of the package
# list, so changing the list builds a new one.
set -euo pipefail

dest=${1:?usage: build_root.sh DEST}
cache=${DOORWATCH_CACHE:-/var/cache/doorwatch}
mirror=${DOORWATCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# What INSTALL.md's apt line needs on a Pi, minus the Raspberry Pi-only
# python3-picamera2 (not in Debian), plus OpenCV/numpy/numba from Debian (no wheel
# is needed on the device) and valgrind for instruction counts.
packages=python3,python3-venv,python3-pip,python3-numpy,python3-opencv,python3-numba,ca-certificates,adduser,valgrind,procps
key=$(printf '%s %s %s' "$suite" "$packages" v1 | sha256sum | cut -c1-12)
tarball="$cache/$suite-arm64-root-$key.tar.gz"

here=$(cd "$(dirname "$0")" && pwd)
"$here/binfmt.sh"

mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  build=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$build"' EXIT
  start=$(date +%s)
  echo "pi-root: debootstrap $suite arm64 (first time only; cached as $tarball)"
  debootstrap --arch=arm64 --variant=minbase --include="$packages" "$suite" "$build/root" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log"; exit 1; }
  # Apt lists and downloaded .debs are not part of a Pi image.
  rm -rf "$build/root/var/cache/apt/archives/"*.deb "$build/root/var/lib/apt/lists/"*
  tar -C "$build/root" --numeric-owner -czf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  echo "pi-root: built in $(( $(date +%s) - start )) s"
fi
mkdir -p "$dest"
tar -C "$dest" --numeric-owner -xzf "$tarball"

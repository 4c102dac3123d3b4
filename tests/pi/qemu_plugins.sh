#!/usr/bin/env bash
# Build qemu-aarch64 (user mode) with TCG plugins, and its `insn` counting plugin,
# from Debian's own qemu source package, for `make pi-test`'s instruction counts:
#
#   tests/pi/qemu_plugins.sh DIR        then: DOORWATCH_QEMU_PLUGINS=DIR/build make pi-test
#
# Why a build: Debian's qemu-user-static is a static binary (a static QEMU cannot load
# plugins) and Debian's qemu-user (bookworm, 7.2) is built without them: it has no
# -plugin option and ships no plugin. The source is Debian's (`apt-get source qemu`,
# which needs a deb-src line for the release); the build is the same version with
# --enable-plugins, the aarch64 Linux user-mode target only.
# Needs: apt-get install meson ninja-build libglib2.0-dev pkg-config.
set -euo pipefail
dir=${1:?usage: qemu_plugins.sh DIR}
mkdir -p "$dir"
cd "$dir"
src=$(ls -d qemu-*/ 2>/dev/null | head -n 1 || true)
if [ -z "$src" ]; then
  apt-get source --download-only qemu >/dev/null || {
    echo "qemu_plugins: apt-get source qemu failed: add a deb-src line for Debian's release" >&2; exit 1; }
  tar xf qemu_*.orig.tar.xz
  src=$(ls -d qemu-*/ | head -n 1)
fi
mkdir -p "$src/build"
cd "$src/build"
# The dfsg source has no firmware blobs: a user-mode build does not install any.
../configure --target-list=aarch64-linux-user --enable-plugins --disable-system --disable-tools \
  --disable-docs --disable-werror --disable-install-blobs >configure.log
ninja qemu-aarch64 tests/plugin/libinsn.so >build.log
echo "$PWD"

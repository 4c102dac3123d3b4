#!/usr/bin/env bash
# Build the installer's one-step package: doorwatch-agent_<version>_arm64.deb.
#
#   firmware_config/deb/build.sh [OUTDIR]        (default: dist/)
#
# The package carries doorwatch's own wheel and every wheel the agent needs
# besides Debian's packages (a wheelhouse: the device installs offline), the
# hardened systemd units of systemd/ and the example configuration. Its
# postinst makes the `doorwatch` user (groups gpio, video), a venv under
# /opt/doorwatch/venv on top of Debian's python3-numpy / python3-opencv (and
# Raspberry Pi OS's python3-picamera2 when present), and enables a path unit
# that starts the agent once `doorwatch agent install-bundle` has written
# /etc/doorwatch/agent.toml.
# Building needs the package index (pip) but neither root nor an arm64 machine:
# the compiled wheels (pydantic-core) are fetched for aarch64 and for each
# Python in $DOORWATCH_DEB_PYTHONS (default: 3.11 for Raspberry Pi OS Bookworm,
# 3.13 for Trixie); dpkg-deb --root-owner-group.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
python=${PYTHON:-python3}
version=$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$repo/pyproject.toml")

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
install -d "$pkg/DEBIAN" "$pkg/opt/doorwatch/wheels" "$pkg/lib/systemd/system" \
  "$pkg/usr/share/doorwatch" "$pkg/usr/share/doc/doorwatch-agent" "$pkg/usr/bin"

wheels=$pkg/opt/doorwatch/wheels
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$repo" >/dev/null
# What pip must fetch besides the wheel: the [agent] extra minus what Debian provides
# (numpy, OpenCV) — a PyPI OpenCV wheel beside Debian's would be a second copy to keep patched.
# The CLI loads each part's commands only when they run, so the device needs
# the agent's packages alone (DOORWATCH_DEB_EXTRAS adds others, e.g. "agent demo").
# shellcheck disable=SC2086
"$python" "$here/requirements.py" "$repo/pyproject.toml" ${DOORWATCH_DEB_EXTRAS:-agent} \
  >"$pkg/opt/doorwatch/requirements.txt"
# The wheelhouse: resolve on this machine (and build the few sdist-only packages,
# all pure Python, into wheels), then fetch the aarch64 builds of compiled ones.
house=$stage/house
"$python" -m pip wheel --quiet --wheel-dir "$house" -r "$pkg/opt/doorwatch/requirements.txt" >/dev/null
for py in ${DOORWATCH_DEB_PYTHONS:-3.11 3.13}; do
  "$python" -m pip download --quiet --dest "$house" --find-links "$house" --only-binary=:all: \
    --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64 \
    --implementation cp --python-version "$py" -r "$pkg/opt/doorwatch/requirements.txt" >/dev/null
done
for wheel in "$house"/*.whl; do
  case $wheel in
    *-none-any.whl|*aarch64*.whl) cp "$wheel" "$wheels/" ;;  # this machine's own builds stay out
  esac
done

install -m 0644 "$repo/systemd/doorwatch-agent.service" "$repo/systemd/doorwatch-agent.path" \
  "$pkg/lib/systemd/system/"
install -m 0644 "$repo/firmware_config/agent.example.toml" "$repo/firmware_config/INSTALL.md" \
  "$repo/firmware_config/config.txt.fragment" "$pkg/usr/share/doorwatch/"
ln -s /opt/doorwatch/venv/bin/doorwatch "$pkg/usr/bin/doorwatch"
printf 'doorwatch agent %s, built from the doorwatch repository.\nLicense: Apache-2.0\n' \
  "$version" >"$pkg/usr/share/doc/doorwatch-agent/copyright"
for script in postinst prerm postrm; do install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"; done
sed "s/@VERSION@/$version/" "$here/control" >"$pkg/DEBIAN/control"
# Installed size in KiB, as dpkg expects.
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)" >>"$pkg/DEBIAN/control"

deb="$out/doorwatch-agent_${version}_arm64.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
(cd "$out" && sha256sum "$(basename "$deb")" >"$(basename "$deb").sha256")
echo "$deb"

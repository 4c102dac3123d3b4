#!/usr/bin/env bash
# The agent on a Raspberry Pi OS base (Debian trixie, arm64) under qemu-user emulation.
#
#   make pi-test            (root only: chroot, mount, binfmt_misc)
#
# 1. an arm64 trixie root from Debian's packages (tests/pi/build_root.sh; cached
#    in $DOORWATCH_CACHE, outside the repository);
# 2. the installer's one step: the .deb of firmware_config/deb, checked against
#    its checksum and installed with dpkg as INSTALL.md says (own venv under /opt,
#    hardened unit, `doorwatch` user in gpio and video, waiting for its bundle);
# 3. the analyzer on a shared clip inside the root, compared with this machine's;
# 4. a broker on this machine made by `doorwatch broker init/run`, a device made
#    by `doorwatch device provision`, its bundle installed inside the root with
#    `doorwatch agent install-bundle`, and the agent running there in simulation
#    as the doorwatch user, publishing over TLS until its events arrive here.
# Prints each step's time; figures go to $DOORWATCH_CACHE/pi-figures.txt.
# Emulated wall time is no measure of a Pi's speed; only install and set-up
# times of this procedure are reported.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${DOORWATCH_CACHE:-/var/cache/doorwatch}
dw="$repo/.venv/bin/doorwatch"
clip_name=${DOORWATCH_PI_CLIP:-caviar_OneLeaveShop1front.mpg}
shared=${DOORWATCH_SHARED_DATA:-$repo/../shared/data}
[ "$(id -u)" = 0 ] || { echo "pi-test: needs root (chroot, mounts, binfmt_misc)" >&2; exit 1; }
for tool in debootstrap dpkg-deb mosquitto_sub; do
  command -v "$tool" >/dev/null || { echo "pi-test: $tool missing (apt install debootstrap qemu-user-static mosquitto-clients)" >&2; exit 1; }
done
[ -x /usr/bin/qemu-aarch64-static ] || { echo "pi-test: apt install qemu-user-static" >&2; exit 1; }

work=$(mktemp -d /var/tmp/doorwatch-pi.XXXXXX)
root=$work/root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for m in dev/pts dev proc sys root/.cache/pip; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT
figures=()
step() { echo "pi-test: $*"; }
timed() {  # timed NAME COMMAND...: run, record seconds
  local name=$1 start=$SECONDS; shift
  "$@"
  figures+=("$name $((SECONDS - start)) s")
}
# A machine that reaches PyPI through a TLS proxy of its own trusts that proxy's CA
# through pip's `cert`; the root's pip (run by postinst) gets the same bundle.
pip_cert=${PIP_CERT:-$(pip3 config get global.cert 2>/dev/null || true)}
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 DOORWATCH_LANG=en ${pip_cert:+PIP_CERT=/etc/pip-host-ca.crt} "$@"; }

step "arm64 root"
timed root "$repo/tests/pi/build_root.sh" "$root"
in_root uname -m | grep -qx aarch64
mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
mount -t proc proc "$root/proc"; mount -t sysfs sys "$root/sys"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if [ -n "$pip_cert" ]; then cp -L "$pip_cert" "$root/etc/pip-host-ca.crt"; fi
# pip's downloads are kept between runs (the arm64 wheels are the same each time).
mkdir -p "$cache/pip-arm64" "$root/root/.cache/pip"
mount --bind "$cache/pip-arm64" "$root/root/.cache/pip"

step "package"
timed package "$repo/firmware_config/deb/build.sh" "$work/dist" >/dev/null
deb=$(ls "$work/dist"/doorwatch-agent_*_arm64.deb)
cp "$deb" "$deb.sha256" "$root/tmp/"
step "install (dpkg -i, as INSTALL.md says)"
in_root sh -c 'cd /tmp && sha256sum -c doorwatch-agent_*_arm64.deb.sha256'
timed install in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
cat "$work/install.log"
grep -q "waiting for its bundle" "$work/install.log"
in_root id -nG doorwatch | tr ' ' '\n' | sort | tr '\n' ' ' | grep -q "doorwatch gpio video"
in_root test -x /opt/doorwatch/venv/bin/doorwatch
in_root test -f /lib/systemd/system/doorwatch-agent.service
in_root test -f /lib/systemd/system/doorwatch-agent.path
in_root test ! -e /etc/doorwatch/agent.toml
[ "$(in_root stat -c %U:%a /var/lib/doorwatch)" = doorwatch:750 ]
# OpenCV and numpy are Debian's (no wheel beside them), the rest the venv's.
in_root /opt/doorwatch/venv/bin/python -c '
import cv2, numpy, pydantic, sys
assert cv2.__file__.startswith("/usr/lib/python3/dist-packages/"), cv2.__file__
assert numpy.__file__.startswith("/usr/lib/python3/dist-packages/"), numpy.__file__
assert pydantic.__file__.startswith("/opt/doorwatch/venv/"), pydantic.__file__
print("pi-test: python", sys.version.split()[0], "opencv", cv2.__version__, "numpy", numpy.__version__)'
for args in "--help" "agent --help" "agent config-schema"; do
  # shellcheck disable=SC2086
  in_root doorwatch $args >/dev/null
done

step "analyzer on $clip_name"
clip="$shared/videos/$clip_name"
[ -f "$clip" ] || { echo "pi-test: shared clip $clip missing" >&2; exit 1; }
cp "$clip" "$root/tmp/clip"
"$repo/.venv/bin/python" - "$shared/labels.json" "$clip_name" >"$root/tmp/scene.toml" <<'PY'
import json, sys
scene = json.load(open(sys.argv[1]))["clips"][sys.argv[2]]["scene"]
(ax, ay), (bx, by) = scene["threshold"]
ix, iy = scene["inside_point"]
print(f"threshold = [[{ax}, {ay}], [{bx}, {by}]]\ninside_point = [{ix}, {iy}]")
PY
"$dw" analyze "$clip" --scene "$root/tmp/scene.toml" >"$work/analyze-host.jsonl"
timed analyze in_root doorwatch analyze /tmp/clip --scene /tmp/scene.toml >"$work/analyze-arm64.jsonl"
tail -n 1 "$work/analyze-arm64.jsonl"
passages() { grep -c '"direction"' "$1" || true; }
host_n=$(passages "$work/analyze-host.jsonl"); arm_n=$(passages "$work/analyze-arm64.jsonl")
[ "$arm_n" -ge 1 ] || { echo "pi-test: no passage found on arm64" >&2; exit 1; }
[ "$arm_n" = "$host_n" ] || { echo "pi-test: arm64 found $arm_n passages, this machine $host_n" >&2; exit 1; }

step "agent in simulation over TLS to a broker on this machine"
read -r tls_port loop_port < <("$repo/.venv/bin/python" -c 'from ground.ports import free_ports; print(*free_ports(2))')
"$dw" --lang en broker init "$work/broker" --hostname 127.0.0.1 --port "$tls_port" --loopback-port "$loop_port" >/dev/null
"$dw" --lang en broker run "$work/broker" >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && break; sleep 0.1; done
"$dw" --lang en device provision --id door-pi1 --broker-dir "$work/broker" --out "$work/door-pi1.bundle.json" >/dev/null
server_pw=$("$repo/.venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_password"])' "$work/broker/doorwatch-broker.json")
mosquitto_sub -h 127.0.0.1 -p "$loop_port" -u doorwatch-server -P "$server_pw" -q 1 -v \
  -t 'doorwatch/v1/dev/door-pi1/event' -t 'doorwatch/v1/dev/door-pi1/status' >"$work/received.txt" &
pids+=($!)
cp "$work/door-pi1.bundle.json" "$root/tmp/"
in_root doorwatch agent install-bundle /tmp/door-pi1.bundle.json
in_root chown -R doorwatch: /var/lib/doorwatch   # as INSTALL.md says
in_root test -f /etc/doorwatch/agent.toml
start=$SECONDS
in_root runuser -u doorwatch -- env DOORWATCH_AGENT_SIMULATE=1 \
  doorwatch agent run -c /etc/doorwatch/agent.toml --mean-interval 4 >"$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
until grep -q '/event ' "$work/received.txt" 2>/dev/null; do
  if ! kill -0 "$agent" 2>/dev/null || [ $((SECONDS - start)) -gt "${DOORWATCH_PI_AGENT_WAIT:-300}" ]; then
    echo "pi-test: no event from the arm64 agent; its log:" >&2; tail -n 30 "$work/agent.log" >&2; exit 1
  fi
  sleep 1
done
figures+=("agent-first-event $((SECONDS - start)) s")
grep -q 'status online' "$work/received.txt"
grep '/event ' "$work/received.txt" | head -n 1 | cut -c1-300
kill -TERM "$agent"; wait "$agent" || true

step "figures (emulated: set-up times of this procedure, not device speed)"
{ date -u +%FT%TZ; printf '%s\n' "${figures[@]}"; } | tee "$cache/pi-figures.txt"
echo "pi-test: PASS"

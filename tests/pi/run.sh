#!/usr/bin/env bash
# The agent on a Raspberry Pi OS base (Debian trixie, arm64) under qemu-user emulation.
#
#   make pi-test            (root only: chroot, mount, binfmt_misc, unshare)
#
# 1. an arm64 trixie root from Debian's packages (tests/pi/build_root.sh; cached
#    in $DOORWATCH_CACHE, outside the repository);
# 2. the installer's one step: the .deb of firmware_config/deb, checked against
#    its checksum and installed with dpkg as INSTALL.md says (own venv under /opt,
#    hardened unit, `doorwatch` user in gpio and video, waiting for its bundle),
#    with the network cut (unshare --net): the package carries its wheels;
# 3. the analyzer on a shared clip inside the root, compared with this machine's;
# 4. the README's path on this machine: a broker (`doorwatch broker init/run`), a
#    server on SQLite (`doorwatch server run -c server.toml`), a household, and a
#    device made by `doorwatch device provision --household 1`; its bundle installed
#    inside the root with `doorwatch agent install-bundle` exactly as INSTALL.md says
#    (no chown: agent.toml, which starts the agent through doorwatch-agent.path, must
#    appear only once the password file is the service's); then the unit's ExecStart,
#    as the unit's User, in simulation, publishing over TLS until the agent's events
#    are at the broker and in the server's database.
# No systemd boots in a qemu-user chroot, so the units are checked with
# `systemd-analyze verify` against the root and their ExecStart is run by hand.
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
for tool in debootstrap dpkg-deb mosquitto curl unshare systemd-analyze; do
  command -v "$tool" >/dev/null || { echo "pi-test: $tool missing (apt install debootstrap qemu-user-static mosquitto curl systemd)" >&2; exit 1; }
done
[ -x /usr/bin/qemu-aarch64-static ] || { echo "pi-test: apt install qemu-user-static" >&2; exit 1; }

work=$(mktemp -d /var/tmp/doorwatch-pi.XXXXXX)
root=$work/root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Whatever still runs inside the root was started by this script (the agent under runuser).
  for proc in /proc/[0-9]*; do
    if [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ]; then kill "${proc#/proc/}" 2>/dev/null || true; fi
  done
  sleep 1
  for m in dev/pts dev proc sys; do
    if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m"; fi
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
root_env=(/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME=/root LANG=C.UTF-8 DOORWATCH_LANG=en)
in_root() { chroot "$root" "${root_env[@]}" "$@"; }
py() { "$repo/.venv/bin/python" "$@"; }

step "arm64 root"
timed root "$repo/tests/pi/build_root.sh" "$root"
in_root uname -m | grep -qx aarch64
mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
mount -t proc proc "$root/proc"; mount -t sysfs sys "$root/sys"

step "package"
timed package "$repo/firmware_config/deb/build.sh" "$work/dist" >/dev/null
deb=$(ls "$work/dist"/doorwatch-agent_*_arm64.deb)
cp "$deb" "$deb.sha256" "$root/tmp/"
step "install (dpkg -i, as INSTALL.md says; no network)"
in_root sh -c 'cd /tmp && sha256sum -c doorwatch-agent_*_arm64.deb.sha256'
timed install unshare --net chroot "$root" "${root_env[@]}" dpkg -i "/tmp/$(basename "$deb")" \
  >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
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
# The units as installed, verified by this machine's systemd (the minimal root has none;
# Raspberry Pi OS has): ExecStart pointed into the root, so its binary must be there.
mkdir -p "$work/units"
for u in doorwatch-agent.path doorwatch-agent.service; do
  sed "s#=/opt/doorwatch/#=$root/opt/doorwatch/#" "$root/lib/systemd/system/$u" >"$work/units/$u"
done
systemd-analyze verify "$work/units/doorwatch-agent.path" "$work/units/doorwatch-agent.service" \
  >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; exit 1; }
if grep -i doorwatch "$work/verify.log"; then echo "pi-test: systemd-analyze verify complains" >&2; exit 1; fi
for args in "--help" "agent --help" "agent config-schema"; do
  # shellcheck disable=SC2086
  in_root doorwatch $args >/dev/null
done

step "analyzer on $clip_name"
clip="$shared/videos/$clip_name"
[ -f "$clip" ] || { echo "pi-test: shared clip $clip missing" >&2; exit 1; }
cp "$clip" "$root/tmp/clip"
py - "$shared/labels.json" "$clip_name" >"$root/tmp/scene.toml" <<'PY'
import json, sys
scene = json.load(open(sys.argv[1]))["clips"][sys.argv[2]]["scene"]
(ax, ay), (bx, by) = scene["threshold"]
ix, iy = scene["inside_point"]
print(f"threshold = [[{ax}, {ay}], [{bx}, {by}]]\ninside_point = [{ix}, {iy}]")
PY
"$dw" analyze "$clip" --scene "$root/tmp/scene.toml" >"$work/analyze-host.jsonl"
in_root doorwatch analyze /tmp/clip --scene /tmp/scene.toml >"$work/analyze-arm64.jsonl"
tail -n 1 "$work/analyze-arm64.jsonl"
passages() { grep -c '"direction"' "$1" || true; }
host_n=$(passages "$work/analyze-host.jsonl"); arm_n=$(passages "$work/analyze-arm64.jsonl")
[ "$arm_n" -ge 1 ] || { echo "pi-test: no passage found on arm64" >&2; exit 1; }
[ "$arm_n" = "$host_n" ] || { echo "pi-test: arm64 found $arm_n passages, this machine $host_n" >&2; exit 1; }

# Instructions per analysed frame on arm64, when a QEMU build with TCG plugins is given
# (tests/pi/qemu_plugins.sh makes one from Debian's qemu source; Debian's own
# qemu-user-static is static and qemu-user is built without plugins). Counted by the
# `insn` plugin over the whole process, as callgrind counts on x86; two runs that decode
# the same 200 frames and analyse 80 or 200 of them give the analyzer's cost per frame.
if [ -n "${DOORWATCH_QEMU_PLUGINS:-}" ]; then
  step "instructions per analysed frame (QEMU insn plugin, $DOORWATCH_QEMU_PLUGINS)"
  cp "$repo/tests/pi/frame_cost.py" "$root/tmp/"
  # This QEMU is an x86-64 program linked to this machine's glib: it runs inside the
  # root (so the root's absolute symlinks, such as Debian's alternatives, resolve there)
  # through its own copy of this machine's loader and libraries.
  qdir=$root/opt/qemu-plugins
  mkdir -p "$qdir"
  cp "$DOORWATCH_QEMU_PLUGINS/qemu-aarch64" "$DOORWATCH_QEMU_PLUGINS/tests/plugin/libinsn.so" "$qdir/"
  for lib in $(ldd "$DOORWATCH_QEMU_PLUGINS/qemu-aarch64" | grep -o '/[^ ]*'); do cp -L "$lib" "$qdir/"; done
  count() {  # the guest's instructions for decoding 200 frames and analysing the first $1
    in_root /opt/qemu-plugins/ld-linux-x86-64.so.2 --library-path /opt/qemu-plugins \
      /opt/qemu-plugins/qemu-aarch64 -plugin /opt/qemu-plugins/libinsn.so,inline=on \
      -d plugin -D "/tmp/insn-$1.txt" \
      /opt/doorwatch/venv/bin/python /tmp/frame_cost.py /tmp/clip /tmp/scene.toml "$1" >&2
    sed -n 's/^insns: //p' "$root/tmp/insn-$1.txt"
  }
  low=$(count 80); high=$(count 200)
  figures+=("arm64-insns analyse-80 $low analyse-200 $high per-frame $(( (high - low) / 120 ))")
  step "arm64 instructions per analysed frame: $(( (high - low) / 120 ))"
fi

step "broker, server, household and device on this machine (the README's path)"
read -r tls_port loop_port http_port < <(py -c 'from ground.ports import free_ports; print(*free_ports(3))')
"$dw" --lang en broker init "$work/broker" --hostname 127.0.0.1 --port "$tls_port" --loopback-port "$loop_port" >/dev/null
"$dw" --lang en broker run "$work/broker" >"$work/broker.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && break; sleep 0.1; done
mkdir -p "$work/server"
printf '%s\n' "database_url = \"sqlite:///$work/server/doorwatch.db\"" "" \
  "[mqtt]" "host = \"127.0.0.1\"" "port = $loop_port" "" \
  "[http]" "enabled = true" "port = $http_port" >"$work/server.toml"
server_pw=$(py -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_password"])' "$work/broker/doorwatch-broker.json")
DOORWATCH_SERVER__MQTT__PASSWORD=$server_pw "$dw" --lang en server run -c "$work/server.toml" >"$work/server.log" 2>&1 &
server=$!
pids+=($server)
until curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null; do
  kill -0 "$server" 2>/dev/null || { echo "pi-test: the server stopped:" >&2; tail -n 30 "$work/server.log" >&2; exit 1; }
  sleep 0.5
done
"$dw" --lang en household add "pi-test household" "arm64 root" -c "$work/server.toml" >/dev/null
"$dw" --lang en device provision --id door-pi1 --household 1 --broker-dir "$work/broker" \
  --config "$work/server.toml" --out "$work/door-pi1.bundle.json" >/dev/null
# What the server has of door-pi1: its status (online once the agent connected over
# TLS) and how many of its events are stored. (No second subscriber: the broker pins
# client ids to usernames, so one as doorwatch-server would take the server's session.)
seen() {
  py -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
status = db.execute("SELECT status FROM devices WHERE device_id = ?", ("door-pi1",)).fetchone()[0]
events = db.execute("SELECT COUNT(*) FROM events WHERE device_id = ? AND type = ? AND kind != ?", ("door-pi1", "event", "commissioning")).fetchone()[0]
print(status or "-", events)' "$work/server/doorwatch.db"
}

step "bundle installed in the root (INSTALL.md: install-bundle, no chown)"
cp "$work/door-pi1.bundle.json" "$root/tmp/"
# What doorwatch-agent.path would see: the moment agent.toml appears, the password
# file must already be there and the service user's.
(until [ -e "$root/etc/doorwatch/agent.toml" ]; do sleep 0.01; done
 stat -c '%u %a' "$root/var/lib/doorwatch/credentials.json" 2>/dev/null || echo missing) >"$work/at-start.txt" &
watcher=$!
in_root doorwatch agent install-bundle /tmp/door-pi1.bundle.json
rm "$root/tmp/door-pi1.bundle.json"
wait "$watcher"
[ "$(cat "$work/at-start.txt")" = "$(in_root id -u doorwatch) 600" ] || {
  echo "pi-test: when agent.toml appeared, credentials.json was: $(cat "$work/at-start.txt")" >&2; exit 1; }

step "commissioning in the root as the service user (INSTALL.md section 5, simulated camera and pin)"
# Under emulation the simulated camera cannot keep its frame rate, so the frame-rate check
# may fail there (as it should on a stalled camera); the broker connection and the test
# event reaching the server's database must pass.
chroot "$root" "${root_env[@]}" runuser -u doorwatch -- env DOORWATCH_LANG=en \
  /opt/doorwatch/venv/bin/doorwatch agent commission --simulate --aim /var/lib/doorwatch/aim.png \
  >"$work/commission.txt" 2>&1 || true
cat "$work/commission.txt"
grep -q '\[PASS\] Broker connection' "$work/commission.txt" || {
  echo "pi-test: commissioning in the root did not reach the broker" >&2; exit 1; }
grep -q '\[PASS\] Test event reaches the server' "$work/commission.txt" || {
  echo "pi-test: the commissioning test event did not reach the server" >&2; exit 1; }
test -s "$root/var/lib/doorwatch/aim.png"
figures+=("commission: $(grep -c '\[PASS\]' "$work/commission.txt") PASS, $(grep -c '\[FAIL\]' "$work/commission.txt") FAIL")

unit=$root/lib/systemd/system/doorwatch-agent.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
unit_user=$(sed -n 's/^User=//p' "$unit")
step "the unit's ExecStart as $unit_user, in simulation: $exec_start --mean-interval 4"
start=$SECONDS
# shellcheck disable=SC2086
chroot "$root" "${root_env[@]}" runuser -u "$unit_user" -- \
  env PYTHONUNBUFFERED=1 DOORWATCH_AGENT_SIMULATE=1 $exec_start --mean-interval 4 >"$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
online="" in_db=""
until [ -n "$in_db" ]; do
  if ! kill -0 "$agent" 2>/dev/null || [ $((SECONDS - start)) -gt "${DOORWATCH_PI_AGENT_WAIT:-600}" ]; then
    echo "pi-test: no event from the arm64 agent in the server's database; its log:" >&2
    tail -n 30 "$work/agent.log" >&2; tail -n 10 "$work/server.log" >&2; exit 1
  fi
  read -r status events < <(seen)
  if [ -z "$online" ] && [ "$status" = online ]; then online=$((SECONDS - start)); fi
  if [ "$events" -gt 0 ]; then in_db=$((SECONDS - start)); fi
  sleep 1
done
figures+=("agent-online ${online:-?} s" "agent-first-event-in-server-db $in_db s")
py -c 'import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT device_id, seq, type, kind, device_time FROM events "
                                            "WHERE device_id = ? ORDER BY seq LIMIT 3", ("door-pi1",))
for row in rows:
    print("pi-test: stored", *row)' "$work/server/doorwatch.db"
kill -TERM "$agent"; wait "$agent" || true

step "figures (emulated: set-up times of this procedure, not device speed)"
{ date -u +%FT%TZ; printf '%s\n' "${figures[@]}"; } | tee "$cache/pi-figures.txt"
echo "pi-test: PASS"

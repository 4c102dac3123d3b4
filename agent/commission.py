"""``doorwatch agent commission``: the installer's PASS/FAIL checklist.

Checks, in order: camera frame rate; camera aim (writes an annotated PNG with
the threshold line and inside point); the door sensor (the installer opens
and closes the door; in simulation the mock pin is driven); the broker with
the device's own credentials (TLS when configured); a test event that the
server confirms; the clock.

Server round trip (contract with the server): the device publishes an event
of kind ``commissioning``; the server, on storing it, sends the device a
``ping`` command. Receiving that ping proves the event reached the server;
the device acknowledges it like any command, and the ping's ``issued_at``
(the server's clock) gives the clock offset.

Every text the installer reads comes from the catalogue (zh_CN / en).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.credentials import CredentialStore
from agent.health import clock_status
from agent.link import AgentLink
from agent.outbox import Outbox, Priority
from broker.door_line import DoorLine
from broker.messages import Command, CommandAck, Event, EventKind, Snapshot, encode, utc_now
from broker.topics import Channel, device_topic
from firmware_config.device_config import DeviceConfig
from firmware_config.scene import Scene
from ground.errors import DoorwatchError
from ground.i18n import t
from sensors.door import DoorContact, DoorTransition
from sensors.frames import Frame, FrameSource

__all__ = ["CheckResult", "Commissioning", "draw_aim"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the checklist."""

    key: str
    ok: bool
    detail: str
    fix: str | None = None


def draw_aim(frame: Frame, scene: Scene | None, path: Path) -> None:
    """Write ``frame`` with the threshold (red) and inside point (green) drawn, as PNG."""
    image = frame.color if frame.color is not None else cv2.cvtColor(frame.gray,
                                                                    cv2.COLOR_GRAY2BGR)
    image = np.ascontiguousarray(image)
    if scene is None:  # no line yet: the bare picture, for drawing it in the dashboard
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise OSError(f"cannot write {path}")
        return
    height, width = image.shape[:2]
    (x1, y1), (x2, y2) = scene.threshold
    a, b = (round(x1 * width), round(y1 * height)), (round(x2 * width), round(y2 * height))
    cv2.line(image, a, b, (0, 0, 255), 2)
    px, py = scene.inside_point
    cv2.circle(image, (round(px * width), round(py * height)), 5, (0, 200, 0), -1)
    cv2.putText(image, "inside", (round(px * width) + 7, round(py * height) + 4),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


class Commissioning:
    """Runs the checks for one device configuration."""

    def __init__(self, config: DeviceConfig, *, pin_factory: Any,
                 open_source: Callable[[], FrameSource] | None, scene: Scene | None,
                 aim_path: Path, drive_door: bool = False, door_unplugged: bool = False,
                 say: Callable[[str], None] = print):
        self.config = config
        self.lang = config.language
        self._pin_factory = pin_factory
        self._open_source = open_source
        self._scene = scene
        self._aim_path = aim_path
        self._drive_door = drive_door
        self._door_unplugged = door_unplugged
        self._say = say
        self._last_frame: Frame | None = None
        self._offset: float | None = None

    def _t(self, key: str, **values: object) -> str:
        return t(f"commission.{key}", self.lang, **values)

    def _result(self, key: str, ok: bool, detail: str, fix: str | None = None) -> CheckResult:
        return CheckResult(self._t(f"{key}.name"), ok, detail, fix)

    async def run(self) -> list[CheckResult]:
        """Every check, in order."""
        results = [await asyncio.to_thread(self.check_camera)]
        results.append(await asyncio.to_thread(self.check_aim))
        results.append(await self.check_door())
        broker = await asyncio.to_thread(self.check_broker)
        results.append(broker)
        results.append(await self.check_server(broker.ok))
        results.append(self.check_clock())
        return results

    # camera

    def check_camera(self) -> CheckResult:
        """Frames arrive at the configured rate."""
        cam = self.config.camera
        need = cam.fps * cam.min_fps_fraction
        if self._open_source is None:
            reason = "camera.backend = none"
            return self._result("camera", False, self._t("camera.none", reason=reason),
                                self._t("camera.fix_none"))
        try:
            with self._open_source() as source:
                frames, started = 0, time.monotonic()
                while time.monotonic() - started < self.config.commission.camera_seconds:
                    frame = source.read()
                    if frame is None:
                        break
                    frames, self._last_frame = frames + 1, frame
                elapsed = max(1e-6, time.monotonic() - started)
        except Exception as exc:
            return self._result("camera", False, self._t("camera.none", reason=str(exc)),
                                self._t("camera.fix_none"))
        fps = (frames - 1) / elapsed if frames > 1 else 0.0
        if fps >= need:
            return self._result("camera", True, self._t("camera.ok", fps=fps, need=need))
        return self._result("camera", False, self._t("camera.slow", fps=fps, need=need),
                            self._t("camera.fix_slow"))

    def check_aim(self) -> CheckResult:
        """Annotated picture written, and the picture is usable (not dark/covered)."""
        if self._last_frame is None:
            return self._result("aim", False, self._t("camera.none", reason="no frame"),
                                self._t("camera.fix_none"))
        try:
            draw_aim(self._last_frame, self._scene, self._aim_path)
        except OSError as exc:
            return self._result("aim", False, str(exc), self._t("camera.fix_none"))
        gray = self._last_frame.gray
        mean, std = float(gray.mean()), float(gray.std())
        if mean < 25 or mean > 235 or std < 6:
            return self._result("aim", False,
                                self._t("aim.dark", mean=mean, std=std, path=self._aim_path),
                                self._t("aim.fix_dark"))
        if self._scene is None:
            # The picture goes to the server with the test event; the line is drawn there.
            return self._result("aim", False, self._t("aim.no_line", path=self._aim_path),
                                self._t("aim.fix_noscene", device=self.config.device_id))
        return self._result("aim", True, self._t("aim.ok", path=self._aim_path))

    # door

    async def check_door(self) -> CheckResult:
        """The installer opens and closes the door; both transitions must register."""
        door_cfg = self.config.door
        timeout = self.config.commission.door_timeout_s
        changes: asyncio.Queue[DoorTransition] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def changed(transition: DoorTransition) -> None:
            loop.call_soon_threadsafe(changes.put_nowait, transition)

        door = DoorContact(door_cfg.gpio_pin, pin_factory=self._pin_factory,
                           pull_up=door_cfg.pull_up, bounce_s=door_cfg.bounce_s,
                           on_change=changed)
        fix = self._t("door.fix_transition", pin=door_cfg.gpio_pin)
        try:
            if self._drive_door:
                # Simulation: a cut wire reads high (open) with the pull-up; a wired, shut door low.
                door.pin.drive_high() if self._door_unplugged else door.pin.drive_low()
                await asyncio.sleep(0.05)
                while not changes.empty():
                    changes.get_nowait()
            if door.is_open:
                self._say(self._t("door.prompt_close"))
                if not await self._wait(changes, False, timeout, door):
                    return self._result("door", False, self._t("door.stuck_open"),
                                        self._t("door.fix_stuck_open", pin=door_cfg.gpio_pin))
            self._say(self._t("door.prompt_open"))
            if not await self._wait(changes, True, timeout, door):
                return self._result("door", False, self._t("door.no_open", timeout=timeout), fix)
            self._say(self._t("door.prompt_close"))
            if not await self._wait(changes, False, timeout, door):
                return self._result("door", False, self._t("door.no_close", timeout=timeout),
                                    fix)
            return self._result("door", True, self._t("door.ok"))
        finally:
            door.close()

    async def _wait(self, changes: asyncio.Queue[DoorTransition], is_open: bool,
                    limit_s: float, door: DoorContact) -> bool:
        if self._drive_door and not self._door_unplugged:
            await asyncio.sleep(0.2)  # the simulated installer's hand
            door.pin.drive_high() if is_open else door.pin.drive_low()
        deadline = time.monotonic() + limit_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                change = await asyncio.wait_for(changes.get(), left)
            except TimeoutError:
                break
            if change.is_open == is_open:
                return True
        return bool(door.is_open == is_open)

    # broker, server, clock

    def check_broker(self) -> CheckResult:
        """Connect with the device's own credentials (TLS when configured)."""
        settings = self.config.mqtt
        where = f"{settings.host}:{settings.port}"
        configured = settings.password.get_secret_value() if settings.password else None
        # The bundle's password lives in mqtt.credentials_file (a rotation may have put a
        # newer one there): the same choice the running agent's link makes.
        try:
            candidates = ([configured] if configured else []) \
                if settings.credentials_file is None \
                else CredentialStore(settings.credentials_file).candidates(configured)
        except DoorwatchError as exc:  # unsafe permissions, corrupt file: it names the file
            return self._result("broker", False, str(exc), self._t("broker.fix_refused"))
        return self._connect(where, list(candidates) or [None])

    def _connect(self, where: str, candidates: list[str | None]) -> CheckResult:
        settings = self.config.mqtt
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"{self.config.device_id}-commission",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(self.config.device_id, candidates[0])
        if settings.tls:
            client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None)
        outcome: list[Any] = []
        client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(reason)
        try:
            client.connect(settings.host, settings.port, keepalive=10)
            client.loop_start()
            deadline = time.monotonic() + 10
            while not outcome and time.monotonic() < deadline:
                time.sleep(0.05)
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake
            return self._result("broker", False,
                                self._t("broker.unreachable", where=where, reason=str(exc)),
                                self._t("broker.fix_unreachable"))
        finally:
            client.disconnect()
            client.loop_stop()
        if not outcome:
            return self._result("broker", False,
                                self._t("broker.unreachable", where=where, reason="timeout"),
                                self._t("broker.fix_unreachable"))
        if outcome[0].is_failure:
            if len(candidates) > 1:  # a pending rotation's password, then the current one
                return self._connect(where, candidates[1:])
            if candidates[0] is None:
                looked = settings.credentials_file or "mqtt.credentials_file"
                return self._result("broker", False,
                                    self._t("broker.no_password", where=where, file=looked),
                                    self._t("broker.fix_refused"))
            return self._result("broker", False,
                                self._t("broker.refused", where=where, reason=str(outcome[0])),
                                self._t("broker.fix_refused"))
        return self._result("broker", True,
                            self._t("broker.ok", where=where, tls=" (TLS)" if settings.tls else ""))

    async def check_server(self, broker_ok: bool) -> CheckResult:
        """A commissioning event goes out; the server's ping proves it arrived."""
        if not broker_ok:
            return self._result("server", False, self._t("server.skipped"),
                                self._t("broker.fix_unreachable"))
        timeout = self.config.commission.server_timeout_s
        outbox = await Outbox.connect(self.config.data_dir / "outbox.db")
        pings: asyncio.Queue[Command] = asyncio.Queue()
        device = self.config.device_id

        def on_command(command: Command) -> None:
            if command.name == "ping":
                pings.put_nowait(command)

        link = AgentLink(device, self.config.mqtt, outbox, on_command=on_command)
        link.start(asyncio.get_running_loop())
        pump = asyncio.create_task(link.run(), name="commission-publisher")
        topic = device_topic(device, Channel.EVENT)
        aim = self._aim_jpeg()
        line = None if self._scene is None else DoorLine(
            threshold=self._scene.threshold, inside_point=self._scene.inside_point)
        event_id = uuid4()
        try:
            sent = time.monotonic()
            await outbox.append(device, topic, lambda s: encode(Event(
                device_id=device, seq=s, event_id=event_id, time=utc_now(),
                kind=EventKind.COMMISSIONING, armed=False, detail="commissioning test event",
                snapshot=aim is not None, door_line=line)))
            if aim is not None:
                # The aim picture goes to the server, where the device's page shows it with
                # the line drawn over it, and where the line can be redrawn.
                snapshot = Snapshot(device_id=device, event_id=event_id, taken_at=utc_now(),
                                    jpeg_b64=base64.b64encode(aim).decode())
                await outbox.append_unsequenced(device, device_topic(device, Channel.SNAPSHOT),
                                                encode(snapshot), Priority.SNAPSHOT)
            link.wake()
            try:
                ping = await asyncio.wait_for(pings.get(), timeout)
            except TimeoutError:
                return self._result("server", False, self._t("server.timeout", timeout=timeout),
                                    self._t("server.fix_timeout"))
            rtt = time.monotonic() - sent
            self._offset = (utc_now() - ping.issued_at).total_seconds()
            await outbox.append(device, topic, lambda s: encode(CommandAck(
                device_id=device, seq=s, time=utc_now(), command_id=ping.command_id,
                command="ping", ok=True)))
            link.wake()
            deadline = time.monotonic() + 5
            while await outbox.depth(device) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            return self._result("server", True, self._t("server.ok", rtt=rtt))
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            link.stop()
            await outbox.close()

    def _aim_jpeg(self) -> bytes | None:
        """The last camera frame as JPEG, without drawings (the dashboard draws the line)."""
        frame = self._last_frame
        if frame is None:
            return None
        image = frame.color if frame.color is not None else frame.gray
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image),
                                [cv2.IMWRITE_JPEG_QUALITY, 85])
        return bytes(data) if ok else None

    def check_clock(self) -> CheckResult:
        """The kernel says synchronised, or the clock agrees with the server's."""
        status = clock_status()
        if status.synchronised:
            return self._result("clock", True, self._t("clock.ok_ntp", source=status.source))
        limit = self.config.commission.max_clock_offset_s
        if self._offset is not None and abs(self._offset) <= limit:
            return self._result("clock", True, self._t("clock.ok_server", offset=self._offset))
        if self._offset is None:
            # Nothing to compare with: the clock may well be right, so no NTP advice yet.
            return self._result("clock", False, self._t("clock.unknown"),
                                self._t("clock.fix_unknown"))
        return self._result("clock", False,
                            self._t("clock.off", offset=f"{self._offset:+.1f} s", limit=limit),
                            self._t("clock.fix"))

    def render(self, results: list[CheckResult]) -> str:
        """The checklist as the installer reads it."""
        lines = []
        for r in results:
            mark = self._t("pass") if r.ok else self._t("fail")
            lines.append(f"[{mark}] {r.key}: {r.detail}")
            if not r.ok and r.fix:
                lines.append(f"       {self._t('fix', fix=r.fix)}")
        failed = sum(1 for r in results if not r.ok)
        lines.append(self._t("summary.ok", total=len(results)) if not failed
                     else self._t("summary.failed", failed=failed, total=len(results)))
        return "\n".join(lines)

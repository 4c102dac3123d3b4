"""Tamper events: the camera's findings, a door sensor stuck open, clock jumps.

Each becomes a durable ``tamper`` event (the same kind at most once per few
minutes, so a camera left covered does not flood the outbox). Camera threads
report through :meth:`TamperReporter.camera_finding`, which hops onto the
event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent.camera import CameraFailure
from agent.health import ClockJumpWatch
from agent.recorder import Recorder
from agent.state import DeviceState
from broker.messages import Event, EventKind, TamperKind, utc_now
from ground.logs import get_logger
from sensors.tamper import TamperFinding

__all__ = ["TamperReporter"]

log = get_logger(__name__)

_TAMPER_KINDS = {
    "covered": TamperKind.CAMERA_COVERED,
    "blinded": TamperKind.CAMERA_BLINDED,
    "moved": TamperKind.CAMERA_MOVED,
    "frozen": TamperKind.CAMERA_FROZEN,
}
# The same tamper condition is reported at most once in this many seconds.
_TAMPER_REPEAT_S = 300.0


class TamperReporter:
    """Records tamper events for one device."""

    def __init__(self, device_id: str, state: DeviceState, recorder: Recorder,
                 spawn: Callable[[Awaitable[Any]], None]):
        self._device_id = device_id
        self._state = state
        self._recorder = recorder
        self._spawn = spawn
        self._last: dict[TamperKind, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # The camera's current failure (for the heartbeat's alarms), None while it works.
        self.camera_alarm: str | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop (camera findings arrive on other threads)."""
        self._loop = loop

    def camera_finding(self, finding: TamperFinding | CameraFailure) -> None:
        """Camera threads report here (thread-safe)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._camera_finding, finding)

    def _camera_finding(self, finding: TamperFinding | CameraFailure) -> None:
        if isinstance(finding, CameraFailure):
            self.camera_alarm = finding.detail if finding.active else None
            kind = TamperKind.CAMERA_FAILED
        else:
            kind = _TAMPER_KINDS[finding.kind]
        if not finding.active:
            log.info("camera condition cleared", extra={"device_id": self._device_id,
                                                        "tamper": kind.value})
            return
        self._spawn(self.report(kind, finding.detail))

    async def report(self, kind: TamperKind, detail: str) -> None:
        """Record a tamper event (the same kind at most once per few minutes)."""
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < _TAMPER_REPEAT_S:
            return
        self._last[kind] = now
        armed, at = self._state.armed, utc_now()
        seq = await self._recorder.record(lambda s: Event(
            device_id=self._device_id, seq=s, time=at, kind=EventKind.TAMPER, armed=armed,
            tamper=kind, detail=detail[:2000]))
        log.warning("tamper", extra={"device_id": self._device_id, "tamper": kind.value,
                                     "detail": detail, "seq": seq})

    async def door_stuck(self, opened_at: float) -> None:
        """The door sensor has read open without a break for too long."""
        await self.report(TamperKind.DOOR_SENSOR_DISCONNECTED,
                          f"door sensor reads open for {time.monotonic() - opened_at:.0f} s "
                          "without a break (cut wire or magnet missing?)")

    async def clock_watch(self, threshold_s: Callable[[], float]) -> None:
        """Watch for wall-clock jumps until cancelled (``threshold_s``: the config's, live)."""
        watch = ClockJumpWatch(threshold_s())
        while True:
            await asyncio.sleep(2.0)
            watch.threshold_s = threshold_s()
            jump = watch.check()
            if jump is not None:
                # Every jump is reported: each one is its own event.
                self._last.pop(TamperKind.CLOCK_JUMP, None)
                await self.report(TamperKind.CLOCK_JUMP, f"wall clock stepped by {jump:+.1f} s")

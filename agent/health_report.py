"""The device's health: heartbeats, alarms, the watchdog's verdict, the status line.

A heartbeat goes out every ``heartbeat_interval_s``: published at once while
connected, kept in the outbox (a bounded number) while offline.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from agent.camera import CameraPipeline
from agent.evidence import EvidenceStore
from agent.health import cpu_temperature
from agent.link import AgentLink
from agent.outbox import Outbox, Priority
from agent.recorder import Recorder
from agent.state import DeviceState
from agent.tamper_report import TamperReporter
from broker.messages import Heartbeat, encode, utc_now
from broker.topics import Channel
from firmware_config.device_config import DeviceConfig

__all__ = ["HealthReporter"]

# A camera analysis thread silent this long (without a reported failure) is stuck.
_STALL_S = 30.0


class HealthReporter:
    """Reports one device's health; reads the other parts, changes none of them."""

    def __init__(self, config: Callable[[], DeviceConfig], *, state: DeviceState,
                 outbox: Outbox, recorder: Recorder, evidence: EvidenceStore,
                 link: AgentLink, tamper: TamperReporter, camera: CameraPipeline | None):
        self._config = config
        self._state = state
        self._outbox = outbox
        self._recorder = recorder
        self._evidence = evidence
        self._link = link
        self._tamper = tamper
        self._camera = camera
        self._started = time.monotonic()
        # The device clock's offset from the server's, learnt from a ping (agent/handlers.py).
        self.clock_offset_s: float | None = None

    def alarms(self) -> list[str]:
        """Health alarms for the heartbeat."""
        found = self._recorder.alarms()
        if self._state.write_error:
            found.append(f"state_unwritable: {self._state.write_error}"[:200])
        if self._evidence.last_error:
            found.append(self._evidence.last_error[:200])
        if self._tamper.camera_alarm:
            found.append(f"camera_failed: {self._tamper.camera_alarm}"[:200])
        return found[:20]

    async def heartbeat(self) -> Heartbeat:
        """The current health report."""
        config = self._config()
        free, temperature = await asyncio.to_thread(_disk_and_temperature, config.data_dir)
        return Heartbeat(
            device_id=config.device_id, time=utc_now(),
            uptime_s=time.monotonic() - self._started, armed=self._state.armed,
            last_seq=await self._outbox.last_seq(config.device_id),
            outbox_depth=await self._outbox.depth(),
            camera_fps=round(self._camera.measured_fps, 2) if self._camera else None,
            cpu_temp_c=temperature, free_disk_mb=free,
            clock_offset_s=self.clock_offset_s,
            firmware_version=config.firmware_version, alarms=self.alarms(),
        )

    async def heartbeat_loop(self) -> None:
        """Publish a heartbeat every interval until cancelled (stored while offline)."""
        while True:
            beat = await self.heartbeat()
            config = self._config()
            if self._link.connected.is_set():
                self._link.publish_transient(Channel.HEARTBEAT, encode(beat))
            elif config.outbox.offline_heartbeats:
                await self._recorder.store_unsequenced(
                    Channel.HEARTBEAT, encode(beat), Priority.HEARTBEAT,
                    config.outbox.offline_heartbeats)
            await asyncio.sleep(config.heartbeat_interval_s)

    def healthy(self) -> bool:
        """False when the camera threads are stuck without having reported a failure."""
        if self._camera is None or self._camera.failed is not None:
            return True
        return time.monotonic() - self._camera.last_progress < _STALL_S

    def status_line(self) -> str:
        """One line for ``systemctl status``."""
        return (f"{'armed' if self._state.armed else 'disarmed'}; "
                f"{'connected' if self._link.connected.is_set() else 'offline'}; "
                f"outbox {self._outbox.waiting}")


def _disk_and_temperature(data_dir: Path) -> tuple[float | None, float | None]:
    """Free MB on the data folder's file system and the CPU temperature (reads files)."""
    try:
        free: float | None = shutil.disk_usage(data_dir).free / 1e6
    except OSError:
        free = None
    return free, cpu_temperature()

"""The agent service: door episodes -> events -> durable outbox -> broker.

One async context manager runs the named loops in a TaskGroup: the MQTT link
(publishes the outbox), the episode tracker (door transitions to episodes),
the heartbeat loop and, in simulation, the simulated household.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from agent.classify import EpisodeClassifier, EpisodeWindow
from agent.episodes import EpisodeTracker
from agent.link import AgentLink
from agent.outbox import Outbox
from agent.state import DeviceState
from broker.messages import (
    Command,
    CommandAck,
    ConfigUpdateCommand,
    EpisodeInfo,
    Event,
    EventKind,
    Heartbeat,
    encode,
    utc_now,
)
from broker.topics import Channel, device_topic
from doorwatch.logs import get_logger
from firmware_config.device_config import DeviceConfig
from sensors.door import DoorContact, DoorTransition

__all__ = ["Agent", "running_agent"]

log = get_logger(__name__)


class Agent:
    """One device's logic, independent of how it is started."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        pin_factory: Any,
        classifier: EpisodeClassifier,
    ):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(config.data_dir / "outbox.db")
        self.state = DeviceState(config.data_dir / "state.json", config.armed_default)
        self.classifier = classifier
        self.link = AgentLink(config.device_id, config.mqtt, self.outbox,
                              on_command=self._on_command)
        self.episodes = EpisodeTracker(config.door.quiet_s, self._episode_ended)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.door = DoorContact(
            config.door.gpio_pin,
            pin_factory=pin_factory,
            pull_up=config.door.pull_up,
            bounce_s=config.door.bounce_s,
            on_change=self._door_changed,
        )
        self._started = time.monotonic()
        self._wall_at_start = utc_now()

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self.config.device_id

    def _door_changed(self, transition: DoorTransition) -> None:
        # gpiozero's thread: hop onto the event loop.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.episodes.feed, transition)

    def _wall(self, monotonic: float) -> Any:
        """Wall-clock time of a monotonic instant (immune to clock steps in between)."""
        from datetime import timedelta

        return self._wall_at_start + timedelta(seconds=monotonic - self._started)

    async def record(self, build: Callable[[int], Event | CommandAck]) -> int:
        """Put a record with the next seq into the outbox and wake the publisher."""
        topic = device_topic(self.device_id, Channel.EVENT)
        seq = await asyncio.to_thread(
            self.outbox.append, self.device_id, topic, lambda s: encode(build(s))
        )
        self.link.wake()
        return seq

    async def _episode_ended(self, window: EpisodeWindow) -> None:
        verdict = await asyncio.to_thread(self.classifier.classify, window)
        episode = EpisodeInfo(
            started_at=self._wall(window.started),
            ended_at=self._wall(window.ended),
            door_sensor=True,
            passages=verdict.passages,
            confidence=verdict.confidence,
            camera_ok=verdict.camera_ok,
        )
        armed = self.state.armed
        seq = await self.record(lambda s: Event(
            device_id=self.device_id, seq=s, time=utc_now(), kind=verdict.kind,
            armed=armed, episode=episode))
        log.info("door episode", extra={"device_id": self.device_id, "seq": seq,
                                        "kind": verdict.kind.value, "armed": armed})

    def _on_command(self, command: Command) -> None:
        asyncio.get_running_loop().create_task(self._handle_command(command))

    async def _handle_command(self, command: Command) -> None:
        ok, reason = True, None
        if command.name == "arm":
            self.state.set_armed(True)
        elif command.name == "disarm":
            self.state.set_armed(False)
        elif isinstance(command, ConfigUpdateCommand):
            ok, reason = False, "configuration updates are not supported by this agent yet"
        elif command.name == "snapshot":
            ok, reason = False, "no camera configured"
        log.info("command", extra={"device_id": self.device_id, "command": command.name, "ok": ok})
        await self.record(lambda s: CommandAck(
            device_id=self.device_id, seq=s, time=utc_now(), command_id=command.command_id,
            command=command.name, ok=ok, reason=reason))

    def heartbeat(self) -> Heartbeat:
        """The current health report."""
        free = shutil.disk_usage(self.config.data_dir).free / 1e6
        return Heartbeat(
            device_id=self.device_id, time=utc_now(),
            uptime_s=time.monotonic() - self._started, armed=self.state.armed,
            last_seq=self.outbox.last_seq(self.device_id), outbox_depth=self.outbox.depth(),
            free_disk_mb=free, firmware_version=self.config.firmware_version,
        )

    async def heartbeat_loop(self) -> None:
        """Publish a heartbeat every interval until cancelled."""
        while True:
            beat = await asyncio.to_thread(self.heartbeat)
            self.link.publish_transient(Channel.HEARTBEAT, encode(beat))
            await asyncio.sleep(self.config.heartbeat_interval_s)

    def close(self) -> None:
        """Release the pin and the outbox."""
        self.door.close()
        self.outbox.close()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop and start the MQTT link."""
        self._loop = loop
        self.link.start(loop)


@asynccontextmanager
async def running_agent(
    agent: Agent, extra: dict[str, Callable[[], Awaitable[None]]] | None = None
) -> AsyncIterator[Agent]:
    """Run ``agent``'s loops (plus ``extra`` named loops) for the ``async with`` block."""
    agent.attach(asyncio.get_running_loop())
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(agent.link.run(), name="publisher"),
                group.create_task(agent.episodes.run(), name="episodes"),
                group.create_task(agent.heartbeat_loop(), name="heartbeat"),
            ]
            tasks += [group.create_task(fn(), name=name) for name, fn in (extra or {}).items()]
            try:
                yield agent
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        agent.link.stop()
        agent.close()

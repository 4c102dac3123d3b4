"""The agent service: door episodes -> events -> durable outbox -> broker.

:class:`Agent` coordinates the parts agent/wiring.py builds and connects. One
async context manager runs the named loops in a TaskGroup: the MQTT link
(publishes the outbox), the episode tracker (door transitions to episodes),
heartbeats (:mod:`agent.health_report`), the clock-jump watch
(:mod:`agent.tamper_report`), the systemd watchdog, the outbox retry loop and,
in simulation, the simulated household. The camera pipeline runs on threads of
its own (:mod:`agent.camera`); commands are handled in :mod:`agent.handlers`;
an ended episode becomes its event in :mod:`agent.episode_report`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from agent.camera import CameraPipeline
from agent.classify import EpisodeClassifier, EpisodeEvidence, EpisodeWindow
from agent.episode_store import OpenEpisode, load_open_episodes, save_episode
from agent.wiring import build_parts
from broker.messages import CheckinCommand, utc_now
from firmware_config.device_config import DeviceConfig
from ground.logs import get_logger
from ground.sdnotify import ServiceNotifier, watchdog_pings
from sensors.door import DoorTransition

__all__ = ["Agent", "NoCamera", "running_agent"]

log = get_logger(__name__)

# How long a clean stop waits for the outbox to empty (systemd allows TimeoutStopSec=20).
_DELIVER_ON_STOP_S = 3.0


class NoCamera:
    """Classifier of a device without a camera: nothing can be verified."""

    def evidence(self, window: EpisodeWindow, *, final: bool) -> EpisodeEvidence:
        """Every episode is unverified."""
        return EpisodeEvidence(camera_problem="no camera fitted")


class Agent:
    """One device's logic, independent of how it is started."""

    def __init__(
        self,
        config: DeviceConfig,
        *,
        pin_factory: Any,
        classifier: EpisodeClassifier | None = None,
        camera: CameraPipeline | None = None,
    ):
        self.config = config
        self.camera = camera
        self.classifier: EpisodeClassifier = classifier or camera or NoCamera()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("data folder unusable", extra={"device_id": config.device_id,
                                                     "reason": str(exc)})
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = time.monotonic()
        self._wall_at_start = utc_now()
        self.open_episode: OpenEpisode | None = None
        self._restored: EpisodeEvidence | None = None
        # Held while the open episode's persisted state is written (progress, early exit).
        self.episode_lock = asyncio.Lock()
        # Every part, and how they are connected, in agent/wiring.py.
        parts = build_parts(config, self, pin_factory=pin_factory, camera=camera)
        self.outbox = parts.outbox  # opened by :meth:`open`, on the event loop
        self.state = parts.state
        self.link = parts.link
        self.recorder = parts.recorder
        self.evidence_store = parts.evidence_store
        self.tamper = parts.tamper
        self.health = parts.health
        self.episodes = parts.episodes
        self.door = parts.door
        self.reporter = parts.reporter
        self.early = parts.early
        self.commands = parts.commands
        self.chime = parts.chime
        self.checkins = parts.checkins

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self.config.device_id

    @property
    def clock_offset_s(self) -> float | None:
        """The device clock's offset from the server's (set by a ping, in heartbeats)."""
        return self.health.clock_offset_s

    @clock_offset_s.setter
    def clock_offset_s(self, value: float | None) -> None:
        self.health.clock_offset_s = value

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the agent runs on, once attached."""
        return self._loop

    # time

    def wall(self, monotonic: float) -> datetime:
        """Wall-clock time of a monotonic instant (immune to clock steps in between)."""
        return self._wall_at_start + timedelta(seconds=monotonic - self._started)

    def mono(self, wall: datetime) -> float:
        """Monotonic instant of a wall-clock time (for episodes restored after a restart)."""
        return self._started + (wall - self._wall_at_start).total_seconds()

    # door and episodes

    def door_changed(self, transition: DoorTransition) -> None:
        """The door opened or closed (gpiozero's or the camera's thread): hop onto the loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.episodes.feed, transition)

    async def episode_started(self, started: float) -> None:
        """Begin the episode's record and the camera's keyframes."""
        if self.camera is not None:
            self.camera.begin_episode()
        episode = OpenEpisode.new(self.wall(started), door_sensor=self.door is not None,
                                  found_open=self.episodes.found_open)
        self.open_episode = episode
        await save_episode(self.outbox, episode)
        log.info("door episode started", extra={"device_id": self.device_id,
                                                "episode": str(episode.episode_id)})

    async def episode_ended(self, window: EpisodeWindow) -> None:
        """Judge the ended episode with the camera's evidence and report it."""
        await self.early.settle()
        async with self.episode_lock:
            episode = self.open_episode or OpenEpisode.new(
                self.wall(window.started), door_sensor=self.door is not None,
                found_open=window.found_open)
            self.open_episode = None
        found = await asyncio.to_thread(self.classifier.evidence, window, final=True)
        evidence = (self._restored or EpisodeEvidence()).merged(found)
        self._restored = None
        frames = self.camera.end_episode() if self.camera is not None else []
        ended = replace_end(episode.with_evidence(evidence), self.wall(window.ended))
        await save_episode(self.outbox, ended)
        await self.reporter.report(ended, frames)

    async def publish_snapshots(self, event_id: UUID, jpegs: list[bytes], *,
                                keep: bool) -> int:
        """Queue snapshots of ``event_id`` (and keep them locally when ``keep``)."""
        return await self.reporter.publish_snapshots(event_id, jpegs, keep=keep)

    async def persist_progress(self) -> None:
        """Every second of an open episode, store the evidence so far (restart safety)."""
        while True:
            await asyncio.sleep(1.0)
            episode, started = self.open_episode, self.episodes.started
            if episode is None or started is None:
                continue
            window = EpisodeWindow(started=started, ended=time.monotonic())
            try:
                found = await asyncio.to_thread(self.classifier.evidence, window, final=False)
            except Exception:
                log.exception("evidence of the open episode unavailable",
                              extra={"device_id": self.device_id})
                continue
            evidence = (self._restored or EpisodeEvidence()).merged(found)
            async with self.episode_lock:
                current = self.open_episode
                if current is not None and current.episode_id == episode.episode_id:
                    # Keep what an early exit added meanwhile (its passage, its mark).
                    if current.early_event_id is not None:
                        evidence = evidence.merged(EpisodeEvidence(passages=tuple(
                            p for p in current.evidence.passages
                            if p not in evidence.passages)))
                    self.open_episode = current.with_evidence(evidence)
                    await save_episode(self.outbox, self.open_episode)

    async def restore_episodes(self) -> None:
        """Report episodes that ended before a restart; resume the one still open."""
        stored = await load_open_episodes(self.outbox)
        for episode in stored:
            if episode.ended_at is not None or episode is not stored[-1]:
                ended = episode if episode.ended_at else replace_end(episode, utc_now())
                log.info("reporting an episode from before the restart",
                         extra={"device_id": self.device_id, "episode": str(episode.episode_id)})
                await self.reporter.report(ended, [])
                continue
            now = time.monotonic()
            started = self.mono(episode.started_at)
            self.open_episode, self._restored = episode, episode.evidence
            door_open = self.door.is_open if self.door is not None else False
            self.episodes.resume(started, door_open=door_open, now=now,
                                 found_open=episode.found_open)
            if self.camera is not None:
                self.camera.begin_episode()
            log.info("resumed the episode open before the restart",
                     extra={"device_id": self.device_id, "episode": str(episode.episode_id)})

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background, kept until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # commands

    def start_checkin(self, command: CheckinCommand) -> tuple[bool, str | None]:
        """Begin a presence check-in (agent/checkin.py) in the background."""
        if self.camera is None:
            return False, "no camera on this device"
        self.spawn(self.checkins.run(command, self.camera.timeline))
        return True, None

    def on_command(self, command: Any) -> None:
        """Handle a command from the server in the background."""
        self.spawn(self.commands.handle(command))

    # lifecycle

    def apply_config(self, new: DeviceConfig) -> None:
        """Switch the running agent to configuration ``new`` (the settings that apply live)."""
        old, self.config = self.config, new
        self.episodes.configure(quiet_s=new.door.quiet_s, max_open_s=new.door.max_open_s,
                                stuck_open_s=new.door.stuck_open_s)
        self.outbox.budget_bytes = int(new.outbox.disk_budget_mb * 1_000_000)
        self.evidence_store.budget_bytes = int(new.evidence.disk_budget_mb * 1_000_000)
        self.evidence_store.keep_s = new.evidence.keep_days * 86400
        if self.camera is not None and new.camera.scene and new.camera.scene != old.camera.scene:
            self.camera.set_scene(new.camera.scene)

    async def open(self) -> None:
        """Open the outbox (in memory, with a health alarm, when the disk refuses)."""
        degraded = await self.outbox.open_resilient(self.device_id)
        self.recorder.degraded = self.recorder.storage_error = degraded

    async def close(self) -> None:
        """Release the pins (door contact, buzzer), the camera and the outbox."""
        if self.door is not None:
            self.door.close()
        if self.chime is not None:
            # A restarted agent (or the installer's commissioning run) must be able to
            # claim the buzzer's pin again.
            self.chime.close()
        if self.camera is not None:
            self.camera.stop()
        await self.outbox.close()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running loop, start the camera threads and the MQTT link."""
        self._loop = loop
        self.tamper.attach(loop)
        if self.camera is not None:
            self.camera.start()
        self.link.start(loop)
        if self.door is not None and self.door.is_open:
            # gpiozero reports changes only, so tell the tracker the door reads open now.
            if self.open_episode is not None:
                # The episode open before the restart goes on.
                self.episodes.feed(DoorTransition(is_open=True, at=time.monotonic()))
            else:
                # Found open (power cut, restart after an update): we did not see it
                # open, so it is no exit; reported only if somebody is seen passing,
                # or as a tamper if it stays open past door.stuck_open_s.
                log.info("door reads open at start", extra={"device_id": self.device_id})
                self.episodes.assume_open(time.monotonic())


def replace_end(episode: OpenEpisode, ended_at: datetime) -> OpenEpisode:
    """A copy of ``episode`` marked as ended at ``ended_at``."""
    return replace(episode, ended_at=ended_at)


@asynccontextmanager
async def running_agent(
    agent: Agent, extra: dict[str, Callable[[], Awaitable[None]]] | None = None
) -> AsyncIterator[Agent]:
    """Run ``agent``'s loops (plus ``extra`` named loops) for the ``async with`` block."""
    await agent.open()
    try:
        await agent.restore_episodes()
    except BaseException:
        await agent.outbox.close()  # its connection's thread would keep the process alive
        raise
    agent.attach(asyncio.get_running_loop())
    notifier = ServiceNotifier()
    try:
        async with asyncio.TaskGroup() as group:
            loops: dict[str, Callable[[], Awaitable[None]]] = {
                "publisher": agent.link.run,
                "episodes": agent.episodes.run,
                "episode-persist": agent.persist_progress,
                "heartbeat": agent.health.heartbeat_loop,
                "health": lambda: agent.tamper.clock_watch(
                    lambda: agent.config.tamper.clock_jump_s),
                "outbox-retry": agent.recorder.retry_loop,
                "systemd-watchdog": lambda: watchdog_pings(
                    notifier, status=agent.health.status_line, healthy=agent.health.healthy),
                **(extra or {}),
            }
            tasks: dict[str, asyncio.Task[None]] = {
                name: group.create_task(_as_coro(fn), name=name) for name, fn in loops.items()}
            try:
                yield agent
            finally:
                publisher = tasks.pop("publisher")
                for task in tasks.values():
                    task.cancel()
                await _deliver_before_stopping(agent)
                publisher.cancel()
    finally:
        agent.link.stop()
        await agent.close()


async def _deliver_before_stopping(agent: Agent) -> None:
    """On a clean stop (an update, a reboot), give the link a moment to deliver what
    waits in the outbox, so the server has it now rather than when the agent is back.
    Nothing depends on it: what is left stays in the outbox and goes at the next start.
    Only while connected, and well inside systemd's TimeoutStopSec."""
    deadline = time.monotonic() + _DELIVER_ON_STOP_S
    pending = 0
    while agent.link.connected.is_set() and time.monotonic() < deadline:
        try:
            pending = await agent.outbox.depth()
        except Exception:  # a failing outbox must not hold up the shutdown
            return
        if pending == 0:
            return
        await asyncio.sleep(0.05)
    if pending:
        log.info("stopping with records still in the outbox; they go at the next start",
                 extra={"device_id": agent.device_id, "pending": pending,
                        "connected": agent.link.connected.is_set()})


async def _as_coro(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()

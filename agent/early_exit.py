"""Early exit: an exit is reported the moment the camera is confident, not when the door closes.

The analysis thread hands every passage to :meth:`EarlyExits.passage_seen`.
The first confident out-passage of an open episode becomes a version 2 event
(``report="early"``, kind exit) written to the outbox in the same transaction
that marks the persisted episode as reported, so neither a crash nor a
restart can lose it or send it twice. When the episode ends, its event is the
*final* report of the same ``episode_id`` with the verdict
(:func:`agent.verdict.final_verdict`): the server updates the early report's
incident with it and never opens a second breach.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from agent.camera import CameraPipeline, KeyFrame, best_frames, evidence_jpeg
from agent.classify import EpisodeEvidence
from agent.episode_store import OpenEpisode
from agent.episodes import EpisodeTracker
from agent.recorder import Recorder
from agent.state import DeviceState
from agent.verdict import final_verdict
from broker.messages import (
    EVENT_SCHEMA_VERSION,
    EpisodeInfo,
    Event,
    EventKind,
    PassageInfo,
    utc_now,
)
from firmware_config.device_config import DeviceConfig
from ground.logs import get_logger
from sensors.analyzer import Passage

__all__ = ["EarlyExitHost", "EarlyExits"]

log = get_logger(__name__)

# A passage decided this long before the door opened still belongs to its episode
# (the same lead an episode window has, agent/classify.py).
_LEAD_S = 1.0


class EarlyExitHost(Protocol):
    """What early exit reporting uses of the agent (the agent satisfies it)."""

    open_episode: OpenEpisode | None

    @property
    def device_id(self) -> str:
        """This device's id."""
        ...

    @property
    def config(self) -> DeviceConfig:
        """The configuration in force."""
        ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the agent runs on, once attached."""
        ...

    @property
    def episodes(self) -> EpisodeTracker:
        """The door episode tracker."""
        ...

    @property
    def state(self) -> DeviceState:
        """Armed or not (persisted)."""
        ...

    @property
    def episode_lock(self) -> asyncio.Lock:
        """Held while the open episode's persisted state is written."""
        ...

    @property
    def recorder(self) -> Recorder:
        """Where events are recorded durably."""
        ...

    @property
    def camera(self) -> CameraPipeline | None:
        """The camera, if the device has one."""
        ...

    def wall(self, monotonic: float) -> datetime:
        """Wall-clock time of a monotonic reading."""
        ...

    async def publish_snapshots(self, event_id: UUID, jpegs: list[bytes], *,
                                keep: bool) -> int:
        """Send ``jpegs`` as evidence of ``event_id``; keep them on the device if ``keep``."""
        ...


class EarlyExits:
    """Early exit reports of one agent; see the module docstring."""

    def __init__(self, agent: EarlyExitHost) -> None:
        self._agent = agent
        self._pending: set[asyncio.Task[Any]] = set()
        self._claimed: set[UUID] = set()
        self.reported = 0

    # analysis thread -> event loop

    def passage_seen(self, mono: float, passage: Passage) -> None:
        """A passage decided at monotonic ``mono`` (called on the camera's analysis thread)."""
        loop = self._agent.loop
        if loop is None or passage.direction != "out":
            return
        loop.call_soon_threadsafe(self._consider, mono, passage)

    def _consider(self, mono: float, passage: Passage) -> None:
        settings = self._agent.config.camera
        if not settings.early_exit or passage.confidence < settings.min_passage_confidence:
            return
        episode, started = self._agent.open_episode, self._agent.episodes.started
        if episode is None or started is None or episode.early_event_id is not None:
            return
        if mono < started - _LEAD_S or episode.episode_id in self._claimed:
            return
        # Claimed at once (the report is written on a thread): a second out-passage
        # arriving meanwhile must not make a second early report.
        self._claimed.add(episode.episode_id)
        info = PassageInfo(t=round(max(0.0, mono - started), 3), direction="out",
                           track=abs(passage.track), confidence=passage.confidence,
                           box=passage.box)
        task = asyncio.ensure_future(self._report(episode.episode_id, info, mono))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait for early reports being written (before the episode's end is handled)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _report(self, episode_id: UUID, passage: PassageInfo, mono: float) -> None:
        agent = self._agent
        armed = agent.state.armed
        jpegs = await asyncio.to_thread(self._jpegs, mono) if armed else []
        async with agent.episode_lock:
            episode = agent.open_episode
            if episode is None or episode.episode_id != episode_id:
                return  # ended meanwhile: its end reports the exit the usual way
            event_id, now = uuid4(), utc_now()
            marked = replace(
                episode, early_event_id=event_id, early_t=passage.t,
                evidence=episode.evidence.merged(EpisodeEvidence(passages=(passage,))))
            info = EpisodeInfo(
                started_at=episode.started_at, ended_at=max(now, episode.started_at),
                door_sensor=episode.door_sensor, passages=[passage],
                confidence=round(passage.confidence, 3), camera_ok=True)
            seq = await agent.recorder.record(lambda s: Event(
                v=EVENT_SCHEMA_VERSION, device_id=agent.device_id, seq=s, event_id=event_id,
                time=now, kind=EventKind.EXIT, armed=armed, episode=info,
                episode_id=episode.episode_id, report="early", snapshot=bool(jpegs)),
                set_state=(marked.key, marked.dumps()))
            agent.open_episode = marked
        self.reported += 1
        log.info("early exit", extra={"device_id": agent.device_id, "seq": seq,
                                      "episode": str(episode.episode_id), "armed": armed,
                                      "passage_t": passage.t,
                                      "crossed_at": round(agent.wall(mono).timestamp(), 3),
                                      "confidence": passage.confidence,
                                      "lag_s": round(time.monotonic() - mono, 3)})
        if jpegs:
            await agent.publish_snapshots(event_id, jpegs, keep=True)

    def _jpegs(self, mono: float) -> list[bytes]:
        """Evidence for the early exit: the frame kept for the crossing (blocking)."""
        camera, settings = self._agent.camera, self._agent.config.evidence
        if camera is None or not settings.enabled:
            return []
        near = [k for k in list(camera.keyframes)
                if k.reason == "passage out" and abs(k.mono - mono) < 2.0]
        chosen: list[KeyFrame] = best_frames(near, settings.frames_per_event)
        return [evidence_jpeg(k, settings.jpeg_quality) for k in chosen]

    # the episode's end

    async def report_final(self, episode: OpenEpisode) -> None:
        """The verdict on an episode whose exit was reported early (same ``episode_id``)."""
        agent = self._agent
        assert episode.early_event_id is not None
        assert episode.ended_at is not None
        early = next((p for p in episode.evidence.passages
                      if p.direction == "out" and p.t == episode.early_t), None)
        if early is None:
            early = PassageInfo(t=episode.early_t or 0.0, direction="out", track=0,
                                confidence=agent.config.camera.min_passage_confidence)
        verdict = final_verdict(
            episode.evidence, early,
            min_confidence=agent.config.camera.min_passage_confidence,
            reentry_window_s=agent.config.camera.reentry_window_s)
        info = EpisodeInfo(
            started_at=episode.started_at, ended_at=max(episode.ended_at, episode.started_at),
            door_sensor=episode.door_sensor, passages=verdict.passages,
            confidence=verdict.confidence, camera_ok=episode.evidence.camera_problem is None)
        armed, now = agent.state.armed, utc_now()
        seq = await agent.recorder.record(lambda s: Event(
            v=EVENT_SCHEMA_VERSION, device_id=agent.device_id, seq=s, time=now,
            kind=verdict.kind, armed=armed, episode=info, detail=verdict.detail,
            episode_id=episode.episode_id, report="final", verdict=verdict.verdict),
            clear_state=episode.key)
        log.info("door episode verdict", extra={
            "device_id": agent.device_id, "seq": seq, "episode": str(episode.episode_id),
            "verdict": verdict.verdict, "kind": verdict.kind.value, "armed": armed})

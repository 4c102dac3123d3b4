"""An ended door episode becomes its one event, with evidence pictures when armed.

The verdict comes from the episode's evidence (:func:`agent.classify.judge`);
an episode whose exit was already reported early gets its final verdict
instead (:mod:`agent.early_exit`); a door found open at start that closes
again with nobody seen passing is no event at all.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

from agent.camera import KeyFrame, best_frames, evidence_jpeg
from agent.classify import judge
from agent.episode_store import OpenEpisode, drop_episode
from agent.evidence import EvidenceStore
from agent.outbox import Outbox, Priority
from agent.recorder import Recorder
from agent.state import DeviceState
from broker.messages import EpisodeInfo, Event, EventKind, Snapshot, encode, utc_now
from broker.topics import Channel
from firmware_config.device_config import DeviceConfig
from ground.logs import get_logger

__all__ = ["EpisodeReporter"]

log = get_logger(__name__)

_EVIDENCE_KINDS = {EventKind.EXIT, EventKind.ENTRY, EventKind.DOOR_OPEN_UNVERIFIED}
# What an episode of a door found open at start must show to be reported.
_PASSAGE_KINDS = {EventKind.EXIT, EventKind.ENTRY}


class EpisodeReporter:
    """Records ended episodes' events and their evidence for one device."""

    def __init__(self, config: Callable[[], DeviceConfig], *, state: DeviceState,
                 recorder: Recorder, outbox: Outbox, evidence: EvidenceStore,
                 report_final: Callable[[OpenEpisode], Awaitable[None]]):
        self._config = config
        self._state = state
        self._recorder = recorder
        self._outbox = outbox
        self._evidence = evidence
        self._report_final = report_final

    async def report(self, episode: OpenEpisode, frames: list[KeyFrame]) -> None:
        """Judge an ended episode and record its one event (plus evidence).

        An episode whose exit was reported early gets its final verdict instead.
        """
        if episode.early_event_id is not None:
            await self._report_final(episode)
            return
        config = self._config()
        device_id = config.device_id
        verdict = judge(episode.evidence, config.camera.min_passage_confidence)
        assert episode.ended_at is not None
        if episode.found_open and verdict.kind not in _PASSAGE_KINDS:
            # The door was open before we watched: nobody was seen passing, so there is
            # nothing to report (a door left open is the stuck-open timer's business).
            await drop_episode(self._outbox, episode)
            log.info("door found open at start closed again; nobody passed",
                     extra={"device_id": device_id, "kind": verdict.kind.value})
            return
        info = EpisodeInfo(
            started_at=episode.started_at, ended_at=max(episode.ended_at, episode.started_at),
            door_sensor=episode.door_sensor, passages=verdict.passages,
            confidence=verdict.confidence, camera_ok=verdict.camera_ok)
        armed = self._state.armed
        jpegs = self._evidence_jpegs(config, verdict.kind, frames) if armed else []
        event_id, now = uuid4(), utc_now()
        seq = await self._recorder.record(lambda s: Event(
            device_id=device_id, seq=s, event_id=event_id, time=now, kind=verdict.kind,
            armed=armed, episode=info, detail=verdict.detail, snapshot=bool(jpegs)),
            clear_state=episode.key)
        log.info("door episode", extra={"device_id": device_id, "seq": seq,
                                        "kind": verdict.kind.value, "armed": armed,
                                        "passages": len(verdict.passages),
                                        "camera_problem": verdict.detail})
        if jpegs:
            await self.publish_snapshots(event_id, jpegs, keep=True)

    @staticmethod
    def _evidence_jpegs(config: DeviceConfig, kind: EventKind,
                        frames: list[KeyFrame]) -> list[bytes]:
        settings = config.evidence
        if not settings.enabled or kind not in _EVIDENCE_KINDS or not frames:
            return []
        chosen = best_frames(frames, settings.frames_per_event)
        return [evidence_jpeg(k, settings.jpeg_quality) for k in chosen]

    async def publish_snapshots(self, event_id: UUID, jpegs: list[bytes], *, keep: bool) -> int:
        """Queue snapshots of ``event_id`` (and keep them locally when ``keep``)."""
        if keep:
            await asyncio.to_thread(self._evidence.save, event_id, jpegs)
        device_id = self._config().device_id
        sent = 0
        for jpeg in jpegs:
            snap = Snapshot(device_id=device_id, event_id=event_id, taken_at=utc_now(),
                            jpeg_b64=base64.b64encode(jpeg).decode())
            if await self._recorder.store_unsequenced(Channel.SNAPSHOT, encode(snap),
                                                Priority.SNAPSHOT):
                sent += 1
        return sent

"""Open door episodes persisted in the outbox database, so a restart loses nothing.

Each open episode is a state value ``episode:<id>`` holding its wall-clock
start, whether the reed switch started it, the evidence gathered so far and,
once it has ended, its end. The episode's event is written to the outbox in
the same transaction that deletes this value. After a restart, ended episodes
are reported from their stored evidence and an unfinished one is resumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID, uuid4

from agent.classify import EpisodeEvidence
from agent.outbox import Outbox
from ground.errors import StorageError
from ground.logs import get_logger

__all__ = ["OpenEpisode", "drop_episode", "load_open_episodes", "save_episode"]

log = get_logger(__name__)

PREFIX = "episode:"


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """An episode that has started and whose event is not yet in the outbox."""

    episode_id: UUID
    started_at: datetime
    door_sensor: bool
    evidence: EpisodeEvidence = field(default_factory=EpisodeEvidence)
    ended_at: datetime | None = None
    # Begun from a door already open at start: reported only if somebody was seen passing.
    found_open: bool = False
    # The early exit reported while the episode was open (event id, and the out-passage's
    # time since the start): the episode's end then sends its verdict, never a second exit.
    early_event_id: UUID | None = None
    early_t: float | None = None

    @property
    def key(self) -> str:
        """State key in the outbox database."""
        return f"{PREFIX}{self.episode_id}"

    @staticmethod
    def new(started_at: datetime, door_sensor: bool, *, found_open: bool = False
            ) -> OpenEpisode:
        """A fresh episode."""
        return OpenEpisode(uuid4(), started_at, door_sensor, found_open=found_open)

    def with_evidence(self, evidence: EpisodeEvidence) -> OpenEpisode:
        """A copy holding ``evidence``."""
        return replace(self, evidence=evidence)

    def dumps(self) -> str:
        """JSON text."""
        return json.dumps({
            "id": str(self.episode_id),
            "started_at": self.started_at.isoformat(),
            "door_sensor": self.door_sensor,
            "evidence": self.evidence.to_json(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "found_open": self.found_open,
            "early_event_id": str(self.early_event_id) if self.early_event_id else None,
            "early_t": self.early_t,
        })

    @staticmethod
    def loads(text: str) -> OpenEpisode:
        """Inverse of :meth:`dumps`."""
        data = json.loads(text)
        ended = data.get("ended_at")
        return OpenEpisode(
            episode_id=UUID(data["id"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            door_sensor=bool(data["door_sensor"]),
            evidence=EpisodeEvidence.from_json(data.get("evidence", {})),
            ended_at=datetime.fromisoformat(ended) if ended else None,
            found_open=bool(data.get("found_open", False)),
            early_event_id=UUID(data["early_event_id"]) if data.get("early_event_id") else None,
            early_t=float(data["early_t"]) if data.get("early_t") is not None else None,
        )


async def save_episode(outbox: Outbox, episode: OpenEpisode) -> bool:
    """Persist ``episode``; False (logged) when the disk refuses."""
    try:
        await outbox.put_state(episode.key, episode.dumps())
    except StorageError as exc:
        log.error("open episode not persisted", extra={"episode": str(episode.episode_id),
                                                       "reason": str(exc)})
        return False
    return True


async def drop_episode(outbox: Outbox, episode: OpenEpisode) -> None:
    """Forget ``episode`` without reporting it (logged when the disk refuses)."""
    try:
        await outbox.put_state(episode.key, None)
    except StorageError as exc:
        log.error("open episode not removed", extra={"episode": str(episode.episode_id),
                                                     "reason": str(exc)})


async def load_open_episodes(outbox: Outbox) -> list[OpenEpisode]:
    """Every persisted episode, oldest first (unreadable ones are logged and dropped)."""
    found: list[OpenEpisode] = []
    for key, value in await outbox.state_items(PREFIX):
        try:
            found.append(OpenEpisode.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("persisted episode unreadable; discarded", extra={"key": key,
                                                                       "reason": str(exc)})
            await outbox.put_state(key, None)
    return sorted(found, key=lambda e: e.started_at)

"""How a door episode is judged: exit, entry, handover or unverified.

The agent asks a :class:`EpisodeClassifier` once the episode has ended. On a
Pi, the classifier reads the doorway analyzer's tracks for the episode; in
simulation, :class:`ScriptedClassifier` reports what the simulated occupant
was scripted to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from broker.messages import EventKind, PassageInfo

__all__ = ["Classification", "EpisodeClassifier", "EpisodeWindow", "ScriptedClassifier"]


@dataclass(frozen=True, slots=True)
class EpisodeWindow:
    """Monotonic start and end of an episode."""

    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one episode."""

    kind: EventKind
    confidence: float
    passages: list[PassageInfo] = field(default_factory=list)
    camera_ok: bool = True


class EpisodeClassifier(Protocol):
    """Judges an ended door episode."""

    def classify(self, window: EpisodeWindow) -> Classification:
        """Return the verdict for ``window``."""
        ...


class ScriptedClassifier:
    """Reports the outcome that a simulation scripted for the next episode."""

    def __init__(self) -> None:
        self._next: EventKind = EventKind.HANDOVER

    def script(self, kind: EventKind) -> None:
        """Make the next episode end as ``kind``."""
        self._next = kind

    def classify(self, window: EpisodeWindow) -> Classification:
        """Return the scripted verdict (a passage for exits and entries)."""
        kind, self._next = self._next, EventKind.HANDOVER
        passages: list[PassageInfo] = []
        if kind in (EventKind.EXIT, EventKind.ENTRY):
            direction = "out" if kind is EventKind.EXIT else "in"
            passages.append(PassageInfo(t=min(1.0, window.ended - window.started),
                                        direction=direction, track=1, confidence=0.9))
        return Classification(kind=kind, confidence=0.9, passages=passages,
                              camera_ok=kind is not EventKind.DOOR_OPEN_UNVERIFIED)

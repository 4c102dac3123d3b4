"""How a door episode is judged: exit, entry, handover or unverified.

A classifier gathers :class:`EpisodeEvidence` for an episode window (on a Pi
the doorway analyzer's passages, tracks and camera health; in tests and fast
simulations :class:`ScriptedClassifier` reports what the simulated occupant
was scripted to do), and :func:`judge` turns evidence into the verdict. The
split keeps the decision in one pure function and lets the agent persist the
evidence of an open episode, so a restart in the middle loses nothing.

Rules (DESIGN.md, "Event semantics"), in order:

1. a confident ``out`` passage -> ``exit`` (leaving is what matters; a person
   who went out and came back in the same episode still left);
2. the camera could not judge during the episode -> ``door_open_unverified``;
3. a confident ``in`` passage -> ``entry``;
4. somebody was seen in the doorway without crossing -> ``handover``;
5. nobody was seen at all -> ``door_open`` (the door moved, nobody passed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from broker.messages import EventKind, PassageInfo

__all__ = [
    "Classification",
    "EpisodeClassifier",
    "EpisodeEvidence",
    "EpisodeWindow",
    "ScriptedClassifier",
    "judge",
]


@dataclass(frozen=True, slots=True)
class EpisodeWindow:
    """Monotonic start and end of an episode.

    ``lead_s``/``tail_s`` widen the window for passages decided a little
    before the door moved or after it closed (0 where an episode was cut
    from a door held open, so no passage counts twice). ``observed_from`` is
    when this process started watching (after a restart mid-episode).
    """

    started: float
    ended: float
    lead_s: float = 1.0
    tail_s: float = 1.0
    observed_from: float | None = None
    # The door was already open when the agent started (see agent/episodes.py).
    found_open: bool = False


@dataclass(frozen=True, slots=True)
class EpisodeEvidence:
    """What was observed during an episode; ``t`` of passages is relative to its start."""

    passages: tuple[PassageInfo, ...] = ()
    tracks: int = 0
    handovers: int = 0
    camera_problem: str | None = None
    frames: int = 0

    def merged(self, later: EpisodeEvidence) -> EpisodeEvidence:
        """Evidence from before a restart combined with what came after it."""
        return EpisodeEvidence(
            passages=self.passages + later.passages,
            tracks=self.tracks + later.tracks,
            handovers=self.handovers + later.handovers,
            camera_problem=self.camera_problem or later.camera_problem,
            frames=self.frames + later.frames,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the persisted open episode."""
        return {
            "passages": [p.model_dump() for p in self.passages],
            "tracks": self.tracks,
            "handovers": self.handovers,
            "camera_problem": self.camera_problem,
            "frames": self.frames,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> EpisodeEvidence:
        """Inverse of :meth:`to_json`."""
        return EpisodeEvidence(
            passages=tuple(PassageInfo.model_validate(p) for p in data.get("passages", [])),
            tracks=int(data.get("tracks", 0)),
            handovers=int(data.get("handovers", 0)),
            camera_problem=data.get("camera_problem"),
            frames=int(data.get("frames", 0)),
        )

    def dumps(self) -> str:
        """JSON text of :meth:`to_json`."""
        return json.dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one episode."""

    kind: EventKind
    confidence: float
    passages: list[PassageInfo] = field(default_factory=list)
    camera_ok: bool = True
    detail: str | None = None


def judge(evidence: EpisodeEvidence, min_confidence: float = 0.5) -> Classification:
    """The verdict for ``evidence`` (see the module docstring for the rules)."""
    passages = sorted(evidence.passages, key=lambda p: p.t)
    outs = [p for p in passages if p.direction == "out" and p.confidence >= min_confidence]
    ins = [p for p in passages if p.direction == "in" and p.confidence >= min_confidence]
    camera_ok = evidence.camera_problem is None
    detail = evidence.camera_problem
    if outs:
        kind, confidence = EventKind.EXIT, max(p.confidence for p in outs)
    elif not camera_ok:
        kind, confidence = EventKind.DOOR_OPEN_UNVERIFIED, 0.0
    elif ins:
        kind, confidence = EventKind.ENTRY, max(p.confidence for p in ins)
    elif evidence.handovers or evidence.tracks:
        kind, confidence = EventKind.HANDOVER, 0.7 if evidence.handovers else 0.5
    else:
        kind, confidence = EventKind.DOOR_OPEN, 0.6
    return Classification(kind=kind, confidence=round(confidence, 3), passages=passages[:200],
                          camera_ok=camera_ok, detail=detail)


class EpisodeClassifier(Protocol):
    """Gathers the evidence of an episode."""

    def evidence(self, window: EpisodeWindow, *, final: bool) -> EpisodeEvidence:
        """Evidence for ``window``; ``final`` at the episode's end (may wait for analysis)."""
        ...


class ScriptedClassifier:
    """Reports the outcome that a simulation scripted for the next episode."""

    def __init__(self) -> None:
        self._next: EventKind = EventKind.HANDOVER

    def script(self, kind: EventKind) -> None:
        """Make the next episode end as ``kind``."""
        self._next = kind

    def evidence(self, window: EpisodeWindow, *, final: bool) -> EpisodeEvidence:
        """Evidence matching the scripted outcome (consumed when ``final``)."""
        kind = self._next
        if final:
            self._next = EventKind.HANDOVER
        t = round(min(1.0, max(0.0, window.ended - window.started)), 3)
        base = EpisodeEvidence(tracks=1)
        if kind is EventKind.EXIT:
            return replace(base, passages=(PassageInfo(t=t, direction="out", track=1,
                                                       confidence=0.9),))
        if kind is EventKind.ENTRY:
            return replace(base, passages=(PassageInfo(t=t, direction="in", track=1,
                                                       confidence=0.9),))
        if kind is EventKind.DOOR_OPEN_UNVERIFIED:
            return EpisodeEvidence(camera_problem="scripted: camera could not judge")
        if kind is EventKind.DOOR_OPEN:
            return EpisodeEvidence()
        return replace(base, handovers=1)

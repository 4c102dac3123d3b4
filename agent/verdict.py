"""The final verdict on an episode whose exit was already reported early.

The analyzer never retracts a passage (PROTOCOL.md, agreed interface), so a
person who stepped out and came straight back shows as a confident out-passage
followed by a confident in-passage. Once the door has closed the agent decides:
the early exit is *confirmed* when some confident out-passage is not followed
by a confident in-passage within ``reentry_window_s``; otherwise it is
*withdrawn*, as a ``handover`` when the analyzer saw somebody stand at the
threshold and go back in, else as a ``reentry``. Kept apart from
:func:`agent.classify.judge` (the verdict of episodes with no early report),
whose rule "a person who went out and came back still left" stands there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.classify import EpisodeEvidence
from broker.messages import EventKind, PassageInfo

__all__ = ["FinalVerdict", "final_verdict"]

Verdict = Literal["confirmed", "handover", "reentry"]


@dataclass(frozen=True, slots=True)
class FinalVerdict:
    """What the episode's final report says about its early exit."""

    verdict: Verdict
    kind: EventKind
    confidence: float
    passages: list[PassageInfo]
    detail: str | None = None


def final_verdict(evidence: EpisodeEvidence, early: PassageInfo, *, min_confidence: float,
                  reentry_window_s: float) -> FinalVerdict:
    """Confirm or withdraw the early exit ``early`` given the whole episode's ``evidence``.

    ``early`` is counted even if the evidence lost it (a restart right after the
    early report, before the evidence was persisted again).
    """
    passages = sorted({*evidence.passages, early}, key=lambda p: p.t)
    confident = [p for p in passages if p.confidence >= min_confidence]
    ins = [p.t for p in confident if p.direction == "in"]
    outs = [p for p in confident if p.direction == "out"]
    standing = [p for p in outs
                if not any(p.t < t <= p.t + reentry_window_s for t in ins)]
    if standing:
        return FinalVerdict("confirmed", EventKind.EXIT,
                            round(max(p.confidence for p in standing), 3), passages[:200])
    # The analyzer's track summaries flag a person who stood at the threshold.
    verdict: Verdict = "handover" if evidence.handovers else "reentry"
    back = min((t for t in ins if t > early.t), default=None)
    detail = (f"came back in {back - early.t:.1f} s after going out" if back is not None
              else "stood at the threshold and went back in")
    return FinalVerdict(verdict, EventKind.HANDOVER,
                        round(max((p.confidence for p in confident if p.direction == "in"),
                                  default=early.confidence), 3),
                        passages[:200], detail)

"""A simulated household behind a real agent: drives gpiozero's mock pin.

Deterministic from a seed. Every so often somebody opens the door; with the
configured probabilities the episode ends as an exit, an entry or a handover
(delivery at the threshold). :class:`SimulatedHousehold` tells a scripted
classifier the outcome (fast, for many agents); :class:`CameraHousehold`
makes synthetic people do it in front of the synthetic camera, so the
verdict comes from the real analyzer.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from dataclasses import dataclass
from typing import Literal

from agent.classify import ScriptedClassifier
from broker.messages import EventKind
from ground.logs import get_logger
from sensors.source_synthetic import Cover, DoorOpen, SyntheticSource, Walk

__all__ = ["CameraHousehold", "HouseholdScript", "SimulatedHousehold"]

log = get_logger(__name__)


@dataclass(frozen=True)
class HouseholdScript:
    """How a simulated household behaves."""

    seed: int = 1
    mean_interval_s: float = 20.0
    exit_probability: float = 0.3
    entry_probability: float = 0.2
    open_s: tuple[float, float] = (1.0, 4.0)


class _Household(abc.ABC):
    """What every simulated household shares: a seeded script of door openings."""

    _pin: object
    _script: HouseholdScript
    _rng: random.Random

    def _choose(self) -> EventKind:
        roll = self._rng.random()
        if roll < self._script.exit_probability:
            return EventKind.EXIT
        if roll < self._script.exit_probability + self._script.entry_probability:
            return EventKind.ENTRY
        return EventKind.HANDOVER

    @abc.abstractmethod
    async def open_once(self, kind: EventKind) -> None:
        """One door episode ending as ``kind`` (each household says how)."""

    async def run(self) -> None:
        """Open and close the door forever (until cancelled)."""
        self._pin.drive_low()  # type: ignore[attr-defined]  # the door starts closed
        while True:
            await asyncio.sleep(self._rng.expovariate(1 / self._script.mean_interval_s))
            await self.open_once(self._choose())


class SimulatedHousehold(_Household):
    """Opens and closes the door on a mock pin, scripting each episode's outcome."""

    def __init__(self, pin: object, classifier: ScriptedClassifier, script: HouseholdScript):
        self._pin = pin
        self._classifier = classifier
        self._script = script
        self._rng = random.Random(script.seed)
        self.episodes = 0

    async def open_once(self, kind: EventKind) -> None:
        """One door episode that the classifier will report as ``kind``."""
        self._classifier.script(kind)
        self._pin.drive_high()  # type: ignore[attr-defined]
        await asyncio.sleep(self._rng.uniform(*self._script.open_s))
        self._pin.drive_low()  # type: ignore[attr-defined]
        self.episodes += 1


class CameraHousehold(_Household):
    """A simulated household seen by the synthetic camera: the script decides what
    the rendered people do, the analyzer decides what the agent reports.

    Each door opening schedules a :class:`~sensors.source_synthetic.DoorOpen`
    and a walk (exit, entry or handover) in the synthetic source and drives the
    mock reed switch at the same moments, the way a real door and a real person
    would. ``DOOR_OPEN_UNVERIFIED`` covers the lens while the door is open.
    """

    def __init__(self, pin: object, source: SyntheticSource, script: HouseholdScript):
        self._pin = pin
        self._source = source
        self._script = script
        self._rng = random.Random(script.seed)
        self.episodes = 0
        self.history: list[EventKind] = []
        self.crossings: list[float] = []

    async def open_once(self, kind: EventKind, *, walk_s: float = 4.0,
                        side: int | None = None) -> None:
        """One door episode in which a person does ``kind`` in front of the camera.

        ``side``: which way along the corridor the person walks (-1/+1; random
        from the seed when None).
        """
        open_s = walk_s + 1.6
        self._source.schedule(DoorOpen(0.0, open_s))
        if kind is EventKind.DOOR_OPEN_UNVERIFIED:
            self._source.schedule(Cover(0.0, open_s + 0.5))
            self._source.schedule(Walk("exit", 0.0, duration=walk_s), delay=0.8)
        elif kind in _WALKS:
            side = self._rng.choice((-1, 1)) if side is None else side
            start = self._source.schedule(
                Walk(_WALKS[kind], 0.0, duration=walk_s, side=side), delay=0.8)
            if kind in _CROSSING_AT:
                # Ground truth for latency measurements: the wall time of the frame in
                # which the feet pass the sill (the share of the walk is the synthetic
                # source's own, see ExpectedPassage), from the source's own pacing: a
                # source that had fallen behind under load shows the walk earlier than
                # 0.8 s + the share after the wall clock's now once it catches up
                # (exits reported up to 0.9 s "before" the crossing, session 8).
                t = start + _CROSSING_AT[kind] * walk_s
                due = self._source.wall_time(t)
                crossed = due if due is not None else time.time() + 0.8 + t - start
                self.crossings.append(crossed)
                log.info("simulated person crosses", extra={
                    "kind": kind.value, "side": side, "crossed_at": round(crossed, 3)})
        self.history.append(kind)
        self._pin.drive_high()  # type: ignore[attr-defined]
        await asyncio.sleep(open_s)
        self._pin.drive_low()  # type: ignore[attr-defined]
        self.episodes += 1


# When the feet pass the sill, as a share of the walk (sensors.source_synthetic).
_CROSSING_AT = {EventKind.EXIT: 0.45, EventKind.ENTRY: 0.55}

_WALKS: dict[EventKind, Literal["exit", "entry", "handover"]] = {
    EventKind.EXIT: "exit", EventKind.ENTRY: "entry", EventKind.HANDOVER: "handover"}

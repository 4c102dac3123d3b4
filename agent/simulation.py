"""A simulated household behind a real agent: drives gpiozero's mock pin.

Deterministic from a seed. Every so often somebody opens the door; with the
configured probabilities the episode ends as an exit, an entry or a handover
(delivery at the threshold), which the scripted classifier then reports.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from agent.classify import ScriptedClassifier
from broker.messages import EventKind
from doorwatch.logs import get_logger

__all__ = ["HouseholdScript", "SimulatedHousehold"]

log = get_logger(__name__)


@dataclass(frozen=True)
class HouseholdScript:
    """How a simulated household behaves."""

    seed: int = 1
    mean_interval_s: float = 20.0
    exit_probability: float = 0.3
    entry_probability: float = 0.2
    open_s: tuple[float, float] = (1.0, 4.0)


class SimulatedHousehold:
    """Opens and closes the door on a mock pin, scripting each episode's outcome."""

    def __init__(self, pin: object, classifier: ScriptedClassifier, script: HouseholdScript):
        self._pin = pin
        self._classifier = classifier
        self._script = script
        self._rng = random.Random(script.seed)
        self.episodes = 0

    def _choose(self) -> EventKind:
        roll = self._rng.random()
        if roll < self._script.exit_probability:
            return EventKind.EXIT
        if roll < self._script.exit_probability + self._script.entry_probability:
            return EventKind.ENTRY
        return EventKind.HANDOVER

    async def run(self) -> None:
        """Open and close the door forever (until cancelled)."""
        self._pin.drive_low()  # type: ignore[attr-defined]  # the door starts closed
        while True:
            await asyncio.sleep(self._rng.expovariate(1 / self._script.mean_interval_s))
            await self.open_once(self._choose())

    async def open_once(self, kind: EventKind) -> None:
        """One door episode that the classifier will report as ``kind``."""
        self._classifier.script(kind)
        self._pin.drive_high()  # type: ignore[attr-defined]
        await asyncio.sleep(self._rng.uniform(*self._script.open_s))
        self._pin.drive_low()  # type: ignore[attr-defined]
        self.episodes += 1

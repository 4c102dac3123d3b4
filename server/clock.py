"""Injectable clocks: the server's timers read time only through one of these.

Escalation, reminders, the quarantine schedule and retention compare stored
deadlines with ``clock.now()``; tests drive a :class:`ManualClock` forward
instead of sleeping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from ground.timeutil import to_ts, utcnow

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Something that tells the time (aware, UTC)."""

    def now(self) -> datetime:
        """The current time."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        """The current time, aware, UTC."""
        return utcnow()


class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, start: datetime | None = None):
        self._now = start or utcnow()
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; return the new time."""
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment``."""
        self._now = moment

    def ts(self) -> str:
        """The current time as stored text."""
        return to_ts(self._now)

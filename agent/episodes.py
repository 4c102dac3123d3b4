"""Door episodes: from the door opening until it has stayed closed for the quiet time.

Transitions come from the reed switch (or, without one, from the camera's
doorway activity) on the event loop. The tracker calls:

* ``on_start(started)`` when an episode begins (the agent persists it and
  starts keeping evidence frames);
* ``on_episode(window)`` when it ends: the door stayed closed ``quiet_s``,
  or it has been open ``max_open_s`` (the episode is cut, reported, and a
  continuation starts at once, so somebody leaving through a door that stays
  open is reported without waiting for it to close);
* ``on_stuck(opened_at)`` once when the door has read open without a break for
  ``stuck_open_s`` (with a pull-up, a cut wire reads as "open").

A door that already reads open when the agent starts (:meth:`assume_open`)
did not open in front of us: the episode it begins is marked ``found_open``
(its windows carry the flag) until the door is seen closing and opening
again. The agent reports such an episode only if the camera saw somebody pass;
a door that simply stays open is reported by the stuck-open timer instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent.classify import EpisodeWindow
from sensors.door import DoorTransition

__all__ = ["EpisodeTracker"]

EpisodeDone = Callable[[EpisodeWindow], Awaitable[None]]
EpisodeStarted = Callable[[float], Awaitable[None]]
DoorStuck = Callable[[float], Awaitable[None]]


async def _nothing(_at: float) -> None:
    return None


class EpisodeTracker:
    """Turns door transitions into episodes; see the module docstring."""

    def __init__(
        self,
        quiet_s: float,
        on_episode: EpisodeDone,
        *,
        max_open_s: float = 3600.0,
        stuck_open_s: float = 86400.0,
        on_start: EpisodeStarted = _nothing,
        on_stuck: DoorStuck = _nothing,
    ):
        self._quiet_s = quiet_s
        self._max_open_s = max_open_s
        self._stuck_open_s = stuck_open_s
        self._on_episode = on_episode
        self._on_start = on_start
        self._on_stuck = on_stuck
        self._queue: asyncio.Queue[DoorTransition] = asyncio.Queue()
        self.started: float | None = None
        self.door_open = False
        self._opened_at: float | None = None
        self._closed_at: float | None = None
        self._stuck_reported = False
        self._cut = False
        self._observed_from: float | None = None
        self.found_open = False
        self._found_open_next = False

    def configure(self, *, quiet_s: float, max_open_s: float, stuck_open_s: float) -> None:
        """Change the limits (a remote configuration update); applies from the next wait."""
        self._quiet_s, self._max_open_s, self._stuck_open_s = quiet_s, max_open_s, stuck_open_s

    def feed(self, transition: DoorTransition) -> None:
        """Hand a transition to the tracker (call on the event loop)."""
        self._queue.put_nowait(transition)

    def assume_open(self, at: float) -> None:
        """The door reads open at start (call on the event loop, before :meth:`run`)."""
        self._found_open_next = True
        self.feed(DoorTransition(is_open=True, at=at))

    def resume(self, started: float, *, door_open: bool, now: float,
               found_open: bool = False) -> None:
        """Continue an episode that began (at monotonic ``started``) before a restart."""
        self.started = started
        self.found_open = found_open
        self._observed_from = now
        self.door_open = door_open
        self._opened_at = now if door_open else None
        self._closed_at = None if door_open else now

    def _deadline(self) -> tuple[float, str] | None:
        candidates: list[tuple[float, str]] = []
        if self.started is not None and not self.door_open and self._closed_at is not None:
            candidates.append((self._closed_at + self._quiet_s, "quiet"))
        if self.started is not None and self.door_open:
            candidates.append((self.started + self._max_open_s, "cut"))
        if self.door_open and self._opened_at is not None and not self._stuck_reported:
            candidates.append((self._opened_at + self._stuck_open_s, "stuck"))
        return min(candidates) if candidates else None

    async def run(self) -> None:
        """Track episodes until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = self._deadline()
            timeout = None if deadline is None else max(0.0, deadline[0] - loop.time())
            try:
                # asyncio.timeout, not wait_for (3.11's wait_for can lose a cancellation).
                async with asyncio.timeout(timeout):
                    transition = await self._queue.get()
            except TimeoutError:
                assert deadline is not None
                await self._expire(deadline[1], deadline[0])
                continue
            await self._apply(transition)

    async def _expire(self, what: str, at: float) -> None:
        if what == "stuck":
            self._stuck_reported = True
            assert self._opened_at is not None
            await self._on_stuck(self._opened_at)
            return
        assert self.started is not None
        ended = self._closed_at if what == "quiet" and self._closed_at is not None else at
        window = EpisodeWindow(started=self.started, ended=ended,
                               lead_s=0.0 if self._cut else 1.0,
                               tail_s=1.0 if what == "quiet" else 0.0,
                               observed_from=self._observed_from,
                               found_open=self.found_open)
        self.started, self._closed_at, self._observed_from = None, None, None
        self._cut = what == "cut"
        await self._on_episode(window)
        if self._cut and self.door_open:
            self.started = at
            await self._on_start(at)

    async def _apply(self, transition: DoorTransition) -> None:
        was_open, self.door_open = self.door_open, transition.is_open
        if transition.is_open:
            if not was_open:
                self._opened_at, self._stuck_reported = transition.at, False
                if self.started is not None:
                    self.found_open = False  # seen opening again: a real opening
            self._closed_at = None
            if self.started is None:
                self.started, self._cut = transition.at, False
                self.found_open, self._found_open_next = self._found_open_next, False
                await self._on_start(transition.at)
        else:
            self._opened_at = None
            if self.started is not None:
                self._closed_at = transition.at

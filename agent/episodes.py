"""Door episodes: from the door opening until it has stayed closed for the quiet time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent.classify import EpisodeWindow
from sensors.door import DoorTransition

__all__ = ["EpisodeTracker"]

EpisodeDone = Callable[[EpisodeWindow], Awaitable[None]]


class EpisodeTracker:
    """Turns door transitions into episodes; calls ``on_episode`` when one ends."""

    def __init__(self, quiet_s: float, on_episode: EpisodeDone):
        self._quiet_s = quiet_s
        self._on_episode = on_episode
        self._queue: asyncio.Queue[DoorTransition] = asyncio.Queue()
        self.started: float | None = None

    def feed(self, transition: DoorTransition) -> None:
        """Hand a transition to the tracker (call on the event loop)."""
        self._queue.put_nowait(transition)

    async def run(self) -> None:
        """Track episodes until cancelled."""
        door_open = False
        closed_at: float | None = None
        while True:
            timeout = None
            if self.started is not None and not door_open and closed_at is not None:
                loop_now = asyncio.get_running_loop().time()
                timeout = max(0.0, closed_at + self._quiet_s - loop_now)
            try:
                transition = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                assert self.started is not None and closed_at is not None
                window = EpisodeWindow(started=self.started, ended=closed_at)
                self.started, closed_at = None, None
                await self._on_episode(window)
                continue
            door_open = transition.is_open
            if door_open:
                if self.started is None:
                    self.started = transition.at
                closed_at = None
            elif self.started is not None:
                closed_at = transition.at

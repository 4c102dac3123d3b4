"""Messages as they arrive from the broker, queued for the consumer."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["InboundBuffer", "InboundMessage"]


class InboundMessage(NamedTuple):
    """One MQTT message; ``mid`` is what we acknowledge after the commit.

    A NamedTuple, not a frozen dataclass: it is built once per message by the
    packet parser, where a frozen dataclass's ``__init__`` costs measurably
    more. ``received_at`` is stamped per batch by the ingestor.
    """

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    retain: bool = False
    received_at: str = ""


class InboundBuffer:
    """The queue between the MQTT link and the consumer, both on the event loop.

    A deque and an event rather than an ``asyncio.Queue``: the link adds a whole
    socket read's messages at once and the consumer takes a batch at once.
    """

    def __init__(self) -> None:
        self._items: collections.deque[InboundMessage] = collections.deque()
        self._ready = asyncio.Event()
        # Called after the consumer took a batch (the MQTT link resumes reading there).
        self.on_taken: Callable[[], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop the consumer runs on (kept for the link's start-up order)."""
        del loop  # everything runs on that loop; nothing to remember

    def put_nowait(self, message: InboundMessage) -> None:
        """Append one message."""
        self._items.append(message)
        self._ready.set()

    def extend(self, messages: list[InboundMessage]) -> None:
        """Append many (the MQTT link, once per socket read)."""
        self._items.extend(messages)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def next_batch(self, limit: int, wait_s: float) -> list[InboundMessage]:
        """Wait for at least one message, then up to ``wait_s`` for ``limit`` of them."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        if len(self._items) < limit and wait_s > 0:
            await asyncio.sleep(wait_s)
        count = min(limit, len(self._items))
        batch = [self._items.popleft() for _ in range(count)]
        if self.on_taken is not None:
            self.on_taken()
        return batch

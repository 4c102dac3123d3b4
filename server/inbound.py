"""Messages as they arrive from the broker, and the hand-off from paho's thread to asyncio."""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import NamedTuple

__all__ = ["InboundBuffer", "InboundMessage"]


class InboundMessage(NamedTuple):
    """One MQTT message; ``mid`` is what we acknowledge after the commit.

    A NamedTuple, not a frozen dataclass: it is built once per message on
    paho's thread, where a frozen dataclass's ``__init__`` costs measurably
    more. ``received_at`` is stamped per batch by the ingestor.
    """

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    retain: bool = False
    received_at: str = ""


class InboundBuffer:
    """A thread-safe deque that paho's network thread fills and the consumer drains in batches.

    Waking the event loop costs a system call, so the network thread wakes it
    only when the consumer is actually waiting, not once per message: at high
    rates the consumer finds a full batch without ever sleeping.
    """

    def __init__(self) -> None:
        self._items: collections.deque[InboundMessage] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._waiting = False
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop the consumer runs on."""
        self._loop = loop

    def put_threadsafe(self, message: InboundMessage) -> None:
        """Append from any thread."""
        self._items.append(message)
        if self._waiting and self._loop is not None:
            with self._lock:
                if not self._waiting:
                    return
                self._waiting = False
            self._loop.call_soon_threadsafe(self._ready.set)

    def put_nowait(self, message: InboundMessage) -> None:
        """Append from the event loop's own thread (tests)."""
        self._items.append(message)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def next_batch(self, limit: int, wait_s: float) -> list[InboundMessage]:
        """Wait for at least one message, then up to ``wait_s`` for ``limit`` of them."""
        while not self._items:
            with self._lock:
                self._waiting = True
            # Re-check after announcing: a message may have arrived in between.
            if self._items:
                with self._lock:
                    self._waiting = False
                break
            await self._ready.wait()
            self._ready.clear()
        if len(self._items) < limit and wait_s > 0:
            await asyncio.sleep(wait_s)
        count = min(limit, len(self._items))
        return [self._items.popleft() for _ in range(count)]

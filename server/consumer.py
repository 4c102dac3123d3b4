"""The consumer loop: drain the inbound queue in batches, store, then acknowledge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from doorwatch.logs import get_logger
from server.inbound import InboundBuffer, InboundMessage
from server.ingest import BatchResult, Ingestor

__all__ = ["Consumer"]

log = get_logger(__name__)

# Acknowledges the given ``mid``s (QoS 1 messages only) to the broker, in one write.
Acker = Callable[[list[int]], None]


class Consumer:
    """Batches inbound messages into transactions and acknowledges after commit."""

    def __init__(
        self,
        buffer: InboundBuffer,
        ingestor: Ingestor,
        ack: Acker,
        *,
        batch_max: int,
        batch_wait_s: float,
    ):
        self._buffer = buffer
        self._ingestor = ingestor
        self._ack = ack
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self.totals = BatchResult()
        self.incidents_opened = 0
        # Called with each committed batch's result (e.g. to wake the notifier at once
        # instead of at its next poll). Hooks must be quick and must not raise.
        self.on_committed: list[Callable[[BatchResult], None]] = []

    async def run(self) -> None:
        """Consume until cancelled."""
        while True:
            batch = await self._buffer.next_batch(self._batch_max, self._batch_wait_s)
            await self._store(batch)
            self._ack([message.mid for message in batch if message.qos])

    async def _store(self, batch: list[InboundMessage]) -> None:
        """Store a batch; on failure, isolate the message at fault or wait for the database."""
        delay = 0.5
        while True:
            try:
                self._add(await self._ingestor.process(batch))
                return
            except Exception:
                log.exception("storing a batch failed; retrying message by message",
                              extra={"batch": len(batch)})
            if len(batch) > 1 and await self._store_singly(batch):
                return
            # Even single messages fail: the database itself is unavailable (disk full,
            # PostgreSQL down). Keep the messages unacknowledged and try again.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _store_singly(self, batch: list[InboundMessage]) -> bool:
        for message in batch:
            try:
                self._add(await self._ingestor.process([message]))
            except Exception as exc:
                if not await self._ingestor.reject(message, f"processing failed: {exc!r}"):
                    return False
        return True

    def _add(self, result: BatchResult) -> None:
        self.totals.stored += result.stored
        self.totals.duplicates += result.duplicates
        self.totals.rejected += result.rejected
        self.incidents_opened += len(result.incidents_opened)
        for hook in self.on_committed:
            hook(result)

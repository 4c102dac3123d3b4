"""The consumer loop: drain the inbound queue in batches, store, then acknowledge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ground.logs import get_logger
from server.ingest.ingestor import BatchResult, Ingestor, PreparedBatch
from server.mqtt.inbound import InboundBuffer, InboundMessage

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
        """Consume until cancelled.

        Two batches are in hand at a time: while one is written (SQLite works on
        its own thread, PostgreSQL in its own process), the next is received and
        validated on this one. Writes stay strictly in order, one at a time.
        """
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self._buffer.next_batch(self._batch_max, self._batch_wait_s)
                try:
                    prepared: PreparedBatch | None = await self._ingestor.prepare(batch)
                except Exception:  # e.g. the device list could not be read: retried below
                    prepared = None
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._store_and_ack(batch, prepared),
                                              name="consumer-write")
                # Let the write send its first statement before this loop validates the
                # next batch (which yields only every so many messages).
                await asyncio.sleep(0)
        finally:
            if writing is not None and not writing.done():
                # Not acknowledged, so the broker re-sends whatever this batch held.
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writing

    async def _store_and_ack(self, batch: list[InboundMessage],
                             prepared: PreparedBatch | None) -> None:
        await self._store(batch, prepared)
        self._ack([message.mid for message in batch if message.qos])

    async def _store(self, batch: list[InboundMessage],
                     prepared: PreparedBatch | None = None) -> None:
        """Store a batch; on failure, isolate the message at fault or wait for the database."""
        delay = 0.5
        while True:
            try:
                if prepared is not None:
                    self._add(await self._ingestor.store(prepared))
                else:
                    self._add(await self._ingestor.process(batch))
                return
            except Exception:
                log.exception("storing a batch failed; retrying message by message",
                              extra={"batch": len(batch)})
            prepared = None  # from here on, validate again with each attempt
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

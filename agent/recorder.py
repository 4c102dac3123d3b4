"""Putting records into the outbox without ever losing an event silently.

Events and acks go into the durable outbox. When the outbox cannot be written
(full disk, read-only file system, SQLite "database or disk is full"), the
record's builder is kept in a bounded memory backlog and retried; the agent
keeps running and reports the condition as a health alarm on every heartbeat
(heartbeats bypass the outbox when the broker is connected). If even the
memory backlog overflows, the oldest record is dropped with a critical log
line and counted, which the heartbeat alarms show too.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from agent.link import AgentLink
from agent.outbox import Outbox, Priority
from broker.messages import CommandAck, Event, encode
from broker.topics import Channel, device_topic
from ground.errors import StorageError
from ground.logs import get_logger

__all__ = ["Recorder"]

log = get_logger(__name__)

Build = Callable[[int], Event | CommandAck]


@dataclass
class _Pending:
    build: Build
    clear_state: str | None
    set_state: tuple[str, str] | None = None


class Recorder:
    """Writes events to the outbox, with a memory backlog when the disk fails."""

    def __init__(self, device_id: str, outbox: Outbox, link: AgentLink, *, backlog: int,
                 degraded: str | None = None):
        self.device_id = device_id
        self.outbox = outbox
        self._link = link
        self._backlog: collections.deque[_Pending] = collections.deque()
        self._backlog_max = backlog
        self.storage_error: str | None = degraded
        self.degraded = degraded
        self.lost = 0
        self._topic = device_topic(device_id, Channel.EVENT)
        self._retry = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Records waiting in memory for the disk."""
        return len(self._backlog)

    def alarms(self) -> list[str]:
        """Current health alarms about storage, for heartbeats."""
        found: list[str] = []
        if self.degraded:
            found.append(f"outbox_in_memory: {self.degraded}"[:200])
        if self.storage_error:
            found.append(f"outbox_unwritable: {self.storage_error}"[:200])
        if self._backlog:
            found.append(f"events_in_memory: {len(self._backlog)}")
        if self.outbox.exhausted:
            found.append("outbox_budget_exhausted")
        if self.lost:
            found.append(f"events_lost: {self.lost}")
        return found

    async def record(self, build: Build, *, clear_state: str | None = None,
                     set_state: tuple[str, str] | None = None) -> int | None:
        """Store a record with the next seq; None when it waits in memory for the disk.

        ``clear_state``/``set_state``: a state value deleted/written in the same
        transaction (see :meth:`Outbox.append`).
        """
        pending = _Pending(build, clear_state, set_state)
        if self._backlog:
            self._keep(pending)
            await self.flush()
            return None
        try:
            seq = await self._append(pending)
        except StorageError as exc:
            self._disk_failed(exc)
            self._keep(pending)
            return None
        self._link.wake()
        return seq

    async def _append(self, pending: _Pending) -> int:
        was = self.outbox.exhausted
        seq = await self.outbox.append(self.device_id, self._topic,
                                 lambda s: encode(pending.build(s)),
                                 clear_state=pending.clear_state, set_state=pending.set_state)
        if self.outbox.exhausted and not was:
            log.error("outbox budget exhausted: only events left; still storing them",
                      extra={"device_id": self.device_id, "bytes": self.outbox.stored_bytes})
        return seq

    async def store_unsequenced(self, channel: Channel, payload: bytes, priority: Priority,
                                keep_last: int | None = None) -> bool:
        """Store a heartbeat or snapshot; False if not kept."""
        try:
            kept = await self.outbox.append_unsequenced(
                self.device_id, device_topic(self.device_id, channel), payload, priority,
                keep_last=keep_last)
        except StorageError as exc:
            self._disk_failed(exc)
            return False
        if kept:
            self._link.wake()
        return kept

    def _disk_failed(self, exc: StorageError) -> None:
        if self.storage_error is None:
            log.error("outbox cannot be written; keeping events in memory",
                      extra={"device_id": self.device_id, "reason": str(exc)})
        self.storage_error = str(exc)

    def _keep(self, pending: _Pending) -> None:
        self._backlog.append(pending)
        while len(self._backlog) > self._backlog_max:
            self._backlog.popleft()
            self.lost += 1
            log.critical("memory backlog full: an event was lost",
                         extra={"device_id": self.device_id, "lost": self.lost})

    async def flush(self) -> None:
        """Try to move the memory backlog onto disk (oldest first)."""
        while self._backlog:
            pending = self._backlog[0]
            try:
                await self._append(pending)
            except StorageError as exc:
                self._disk_failed(exc)
                return
            self._backlog.popleft()
            self._link.wake()
        if self.storage_error is not None:
            log.info("outbox writable again", extra={"device_id": self.device_id})
        self.storage_error = None

    async def retry_loop(self, interval_s: float = 5.0) -> None:
        """Retry the memory backlog every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if self._backlog:
                await self.flush()

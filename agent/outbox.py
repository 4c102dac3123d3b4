"""The durable outbox: every record is on disk before it is published.

A record gets its ``seq`` and is written in one SQLite transaction, so the
sequence survives reboots and never repeats; it is deleted only after the
broker's PUBACK. One file can hold several devices' outboxes (the fleet
simulator uses that). The connection is aiosqlite's: every statement, and the
commit's fsync, runs on its own thread, so the event loop never waits for the
SD card; one transaction at a time holds the outbox (:meth:`Outbox._write`).

Under pressure (a long broker outage on a small SD card) the outbox keeps to
a byte budget by priority: heartbeats go first, then snapshots, oldest first.
Events and command acks are never evicted; when they alone exceed the budget
they are still stored and :attr:`Outbox.exhausted` is raised so the agent can
sound a health alarm. Heartbeats and snapshots have no device ``seq``; they
are stored under negative keys so they never collide with it.

The outbox also holds a few small state values (the open door episode) so
that writing an episode's event and forgetting the episode is one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite

from ground.errors import StorageError
from ground.logs import get_logger

__all__ = ["Outbox", "OutboxRecord", "Priority"]

log = get_logger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seqs (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Key under which the counter of negative (unsequenced) keys is kept in ``seqs``.
_AUX_COUNTER = "#aux"


class Priority(IntEnum):
    """What may be evicted under pressure: the higher, the sooner."""

    EVENT = 0
    SNAPSHOT = 1
    HEARTBEAT = 2


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A record waiting for the broker's acknowledgement."""

    device_id: str
    seq: int
    topic: str
    payload: bytes


class _NoRoomError(Exception):
    """A heartbeat or snapshot that does not fit the budget: its transaction is rolled back."""


class Outbox:
    """A SQLite-backed queue of records with per-device sequence numbers.

    Made closed: :meth:`open` (or :meth:`open_resilient`, or ``async with``)
    connects it, so the agent can build its parts around the outbox before its
    event loop runs. Close it on every path: its connection's thread would keep
    the process alive.
    """

    def __init__(self, path: Path | str, *, durable: bool = True,
                 budget_bytes: int | None = None, start_seq: dict[str, int] | None = None):
        self.path = Path(path)
        self.budget_bytes = budget_bytes
        self.exhausted = False
        self.evicted = {Priority.SNAPSHOT: 0, Priority.HEARTBEAT: 0}
        self._durable = durable
        self._start_seq = dict(start_seq or {})
        self._db: aiosqlite.Connection | None = None
        self._bytes = 0
        self._records = 0
        # One transaction at a time, and no read inside another's: the connection is
        # shared, so a read in the middle of a transaction would see its uncommitted rows.
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path | str, *, durable: bool = True,
                      budget_bytes: int | None = None) -> Outbox:
        """The outbox at ``path``, open (see :meth:`open`)."""
        return await cls(path, durable=durable, budget_bytes=budget_bytes).open()

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError(f"outbox {self.path} is not open")
        return self._db

    async def open(self) -> Self:
        """Connect, create or migrate the schema; :class:`StorageError` when impossible."""
        memory = str(self.path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open outbox {self.path}: {exc}") from exc
        try:
            if not memory:
                await conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an event acknowledged to the door logic is on the SD card.
            await conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
            await conn.executescript(_SCHEMA)
            columns = {r[1] for r in await conn.execute_fetchall("PRAGMA table_info(outbox)")}
            if "priority" not in columns:
                await conn.execute(
                    "ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
            for device_id, seq in self._start_seq.items():
                await conn.execute("INSERT OR REPLACE INTO seqs VALUES (?, ?)", (device_id, seq))
            rows = await conn.execute_fetchall(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
        except sqlite3.Error as exc:
            await conn.close()
            raise StorageError(f"cannot open outbox {self.path}: {exc}") from exc
        (count, size), = rows
        self._records, self._bytes = int(count), int(size)
        self._db = conn
        return self

    async def open_resilient(self, device_id: str) -> str | None:
        """Open; if that is impossible (read-only or full file system), become an
        in-memory outbox that continues the device's seq, and say why."""
        try:
            await self.open()
            return None
        except (StorageError, OSError) as exc:
            reason = str(exc)
        last, seq_note = 0, "continued from the file"
        try:
            async with aiosqlite.connect(f"file:{self.path}?immutable=1", uri=True) as ro:
                rows = list(await ro.execute_fetchall(
                    "SELECT last_seq FROM seqs WHERE device_id = ?", (device_id,)))
                last = int(rows[0][0]) if rows else 0
        except sqlite3.Error as exc:
            # Nothing readable: seq restarts at 1, which the server sees as a restart (its
            # gap/duplicate check), so say so here where the cause is known.
            seq_note = f"restarted at 1: last seq unreadable ({exc})"
        log.error("outbox not writable; keeping records in memory only",
                  extra={"device_id": device_id, "path": str(self.path), "reason": reason,
                         "seq": seq_note})
        self.path, self._start_seq = Path(":memory:"), {device_id: last}
        await self.open()
        return reason

    @property
    def stored_bytes(self) -> int:
        """Payload bytes waiting in the outbox."""
        return self._bytes

    @property
    def waiting(self) -> int:
        """Records waiting, all devices (kept in memory: no disk read)."""
        return self._records

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        await (await self._conn.execute(sql, params)).close()

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def _write(self, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction, committed when it returns.

        Shielded: once begun, a transaction runs to its commit or rollback even
        when its caller is cancelled, so the byte and record counts always agree
        with the file.
        """
        return await asyncio.shield(self._transaction(body))

    async def _transaction(self, body: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            before = self._bytes, self._records
            try:
                await self._execute("BEGIN IMMEDIATE")
                result = await body()
                await self._execute("COMMIT")
            except BaseException as exc:
                self._bytes, self._records = before
                await self._rollback(exc)
                raise
            return result

    async def append(self, device_id: str, topic: str, build: Callable[[int], bytes], *,
                     clear_state: str | None = None,
                     set_state: tuple[str, str] | None = None) -> int:
        """Allocate the next seq, build the payload with it and store both atomically.

        ``clear_state`` names a state value deleted in the same transaction
        (the open episode whose event this is); ``set_state`` is a (key, value)
        written in it (the open episode that now records its early exit, so a
        restart can neither lose the report nor send it twice). Events are never refused for
        the budget; a failing disk raises :class:`StorageError`.
        """
        async def body() -> int:
            seq = await self._next(device_id)
            payload = build(seq)
            await self._make_room(len(payload), Priority.EVENT)
            await self._insert(device_id, seq, topic, payload, Priority.EVENT)
            if clear_state is not None:
                await self._execute("DELETE FROM state WHERE key = ?", (clear_state,))
            if set_state is not None:
                await self._execute("INSERT OR REPLACE INTO state VALUES (?, ?)", set_state)
            self._check_exhausted()
            return seq

        return await self._write(body)

    async def append_unsequenced(self, device_id: str, topic: str, payload: bytes,
                                 priority: Priority, *, keep_last: int | None = None) -> bool:
        """Store a heartbeat or snapshot if the budget allows; False when it was dropped.

        ``keep_last`` bounds how many records of this priority are kept for
        the device (heartbeats: only the latest few matter).
        """
        async def body() -> None:
            if not await self._make_room(len(payload), priority):
                raise _NoRoomError
            key = -await self._next(_AUX_COUNTER)
            await self._insert(device_id, key, topic, payload, priority)
            if keep_last is not None:
                await self._trim(device_id, priority, keep_last)

        try:
            await self._write(body)
        except _NoRoomError:
            self.evicted[priority] += 1
            return False
        return True

    async def _next(self, counter: str) -> int:
        # One statement (one trip to the connection's thread): 1 for a new counter.
        rows = await self._fetch(
            "INSERT INTO seqs (device_id, last_seq) VALUES (?, 1) "
            "ON CONFLICT (device_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
            (counter,))
        return int(rows[0][0])

    async def _insert(self, device_id: str, seq: int, topic: str, payload: bytes,
                      priority: Priority) -> None:
        await self._execute(
            "INSERT INTO outbox (device_id, seq, topic, payload, created_at, priority) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (device_id, seq, topic, payload, time.time(), int(priority)),
        )
        self._bytes += len(payload)
        self._records += 1

    async def _remove(self, device_id: str, seq: int) -> int:
        """Delete one record; its payload's size (0 when it was not there)."""
        rows = await self._fetch("DELETE FROM outbox WHERE device_id = ? AND seq = ? "
                                 "RETURNING LENGTH(payload)", (device_id, seq))
        if not rows:
            return 0
        self._bytes -= int(rows[0][0])
        self._records -= 1
        return int(rows[0][0])

    async def _make_room(self, size: int, priority: Priority) -> bool:
        """Evict lower-or-equal priority records (heartbeats first) until ``size`` fits."""
        if self.budget_bytes is None:
            return True
        need = self._bytes + size - self.budget_bytes
        for victim in (Priority.HEARTBEAT, Priority.SNAPSHOT):
            if need <= 0 or victim < priority:
                break
            rows = await self._fetch(
                "SELECT device_id, seq FROM outbox WHERE priority = ? "
                "ORDER BY created_at, seq", (int(victim),))
            for device_id, seq in rows:
                if need <= 0:
                    break
                need -= await self._remove(device_id, seq)
                self.evicted[victim] += 1
                log.warning("outbox over budget: dropped a record",
                            extra={"device_id": device_id, "priority": victim.name.lower()})
        return need <= 0 or priority is Priority.EVENT

    async def _trim(self, device_id: str, priority: Priority, keep: int) -> None:
        rows = await self._fetch(
            "SELECT seq FROM outbox WHERE device_id = ? AND priority = ? "
            "ORDER BY created_at DESC, seq DESC LIMIT -1 OFFSET ?",
            (device_id, int(priority), keep))
        for (seq,) in rows:
            await self._remove(device_id, seq)

    def _check_exhausted(self) -> None:
        if self.budget_bytes is not None:
            self.exhausted = self._bytes > self.budget_bytes

    async def _rollback(self, exc: BaseException) -> None:
        try:
            if self._conn.in_transaction:
                await self._execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"outbox {self.path}: {exc}") from exc

    async def pending(
        self, limit: int, exclude: Iterable[tuple[str, int]] = (), *, device_id: str | None = None
    ) -> list[OutboxRecord]:
        """Oldest records (of ``device_id``, or all) not in ``exclude`` (already handed over).

        A link must ask for its own device's records only: one outbox file may
        hold several devices (the fleet simulator), and a record published on
        another device's connection is refused by the broker's ACL, which for
        QoS 1 still answers PUBACK, so the record would be deleted unsent.
        """
        skip = set(exclude)
        where, params = ("", ()) if device_id is None else ("WHERE device_id = ? ", (device_id,))
        async with self._lock:
            rows = await self._fetch(
                f"SELECT device_id, seq, topic, payload FROM outbox {where}"  # noqa: S608
                "ORDER BY created_at, seq LIMIT ?",
                (*params, limit + len(skip)),
            )
        records = [OutboxRecord(r[0], r[1], r[2], bytes(r[3])) for r in rows]
        return [r for r in records if (r.device_id, r.seq) not in skip][:limit]

    async def delete(self, keys: Iterable[tuple[str, int]]) -> None:
        """Remove acknowledged records."""
        items = list(keys)
        if not items:
            return

        async def body() -> None:
            for device_id, seq in items:
                await self._remove(device_id, seq)
            self._check_exhausted()

        await self._write(body)

    async def depth(self, device_id: str | None = None) -> int:
        """Records waiting (for one device, or all)."""
        where, params = ("", ()) if device_id is None else ("WHERE device_id = ?", (device_id,))
        async with self._lock:
            rows = await self._fetch(f"SELECT COUNT(*) FROM outbox {where}", params)  # noqa: S608
        return int(rows[0][0])

    async def last_seq(self, device_id: str) -> int:
        """Highest seq ever allocated for ``device_id``."""
        async with self._lock:
            rows = await self._fetch("SELECT last_seq FROM seqs WHERE device_id = ?",
                                     (device_id,))
        return int(rows[0][0]) if rows else 0

    async def get_state(self, key: str) -> str | None:
        """A small state value, or None."""
        async with self._lock:
            rows = await self._fetch("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def state_items(self, prefix: str) -> list[tuple[str, str]]:
        """State values whose key starts with ``prefix``, by key."""
        async with self._lock:
            rows = await self._fetch(
                "SELECT key, value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix))
        return [(str(k), str(v)) for k, v in rows]

    async def put_state(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) a small state value durably."""
        async with self._lock:
            try:
                if value is None:
                    await self._execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    await self._execute("INSERT OR REPLACE INTO state VALUES (?, ?)",
                                        (key, value))
            except sqlite3.Error as exc:
                raise StorageError(f"outbox {self.path}: {exc}") from exc

    async def limit_pages(self, pages: int) -> None:
        """Cap the database file at ``pages`` pages (SQLite ``max_page_count``).

        Writes beyond it fail exactly as on a full disk; tests use this to
        exercise the full-disk path without filling a real file system.
        """
        async with self._lock:
            await self._execute(f"PRAGMA max_page_count = {int(pages)}")

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the database (a closed or never opened outbox: nothing to do)."""
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await db.close()

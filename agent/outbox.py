"""The durable outbox: every record is on disk before it is published.

A record gets its ``seq`` and is written in one SQLite transaction, so the
sequence survives reboots and never repeats; it is deleted only after the
broker's PUBACK. One file can hold several devices' outboxes (the fleet
simulator uses that). SQLite here is the blocking ``sqlite3`` module: callers
on an event loop go through ``asyncio.to_thread`` (see ``agent.link``).

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

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from ground.errors import StorageError
from ground.logs import get_logger

__all__ = ["Outbox", "OutboxRecord", "Priority"]

log = get_logger(__name__)

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


class Outbox:
    """A SQLite-backed queue of records with per-device sequence numbers."""

    def __init__(self, path: Path | str, *, durable: bool = True,
                 budget_bytes: int | None = None, start_seq: dict[str, int] | None = None):
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.budget_bytes = budget_bytes
        self.exhausted = False
        self.evicted = {Priority.SNAPSHOT: 0, Priority.HEARTBEAT: 0}
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if not memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an event acknowledged to the door logic is on the SD card.
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._conn.executescript(_SCHEMA)
            self._migrate()
            for device_id, seq in (start_seq or {}).items():
                self._conn.execute("INSERT OR REPLACE INTO seqs VALUES (?, ?)", (device_id, seq))
            row = self._conn.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
            self._bytes = int(row.fetchone()[0])
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open outbox {path}: {exc}") from exc

    def _migrate(self) -> None:
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(outbox)")}
        if "priority" not in columns:
            self._conn.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    @property
    def stored_bytes(self) -> int:
        """Payload bytes waiting in the outbox."""
        return self._bytes

    def append(self, device_id: str, topic: str, build: Callable[[int], bytes], *,
               clear_state: str | None = None, set_state: tuple[str, str] | None = None) -> int:
        """Allocate the next seq, build the payload with it and store both atomically.

        ``clear_state`` names a state value deleted in the same transaction
        (the open episode whose event this is); ``set_state`` is a (key, value)
        written in it (the open episode that now records its early exit, so a
        restart can neither lose the report nor send it twice). Events are never refused for
        the budget; a failing disk raises :class:`StorageError`.
        """
        with self._lock:
            before = self._bytes
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                seq = self._next(device_id)
                payload = build(seq)
                self._make_room(len(payload), Priority.EVENT)
                self._insert(device_id, seq, topic, payload, Priority.EVENT)
                if clear_state is not None:
                    self._conn.execute("DELETE FROM state WHERE key = ?", (clear_state,))
                if set_state is not None:
                    self._conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", set_state)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._bytes = before
                self._rollback(exc)
                raise
            self._bytes += len(payload)
            self._check_exhausted()
            return seq

    def append_unsequenced(self, device_id: str, topic: str, payload: bytes,
                           priority: Priority, *, keep_last: int | None = None) -> bool:
        """Store a heartbeat or snapshot if the budget allows; False when it was dropped.

        ``keep_last`` bounds how many records of this priority are kept for
        the device (heartbeats: only the latest few matter).
        """
        with self._lock:
            before = self._bytes
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                if not self._make_room(len(payload), priority):
                    self._conn.execute("ROLLBACK")
                    self._bytes = before
                    self.evicted[priority] += 1
                    return False
                key = -self._next(_AUX_COUNTER)
                self._insert(device_id, key, topic, payload, priority)
                if keep_last is not None:
                    self._trim(device_id, priority, keep_last)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._bytes = before
                self._rollback(exc)
                raise
            self._bytes += len(payload)
            return True

    def _next(self, counter: str) -> int:
        row = self._conn.execute("SELECT last_seq FROM seqs WHERE device_id = ?",
                                 (counter,)).fetchone()
        seq = (row[0] if row else 0) + 1
        self._conn.execute(
            "INSERT INTO seqs (device_id, last_seq) VALUES (?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq",
            (counter, seq),
        )
        return int(seq)

    def _insert(self, device_id: str, seq: int, topic: str, payload: bytes,
                priority: Priority) -> None:
        self._conn.execute(
            "INSERT INTO outbox (device_id, seq, topic, payload, created_at, priority) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (device_id, seq, topic, payload, time.time(), int(priority)),
        )

    def _make_room(self, size: int, priority: Priority) -> bool:
        """Evict lower-or-equal priority records (heartbeats first) until ``size`` fits."""
        if self.budget_bytes is None:
            return True
        need = self._bytes + size - self.budget_bytes
        for victim in (Priority.HEARTBEAT, Priority.SNAPSHOT):
            if need <= 0 or victim < priority:
                break
            rows = self._conn.execute(
                "SELECT device_id, seq, LENGTH(payload) FROM outbox WHERE priority = ? "
                "ORDER BY created_at, seq", (int(victim),)).fetchall()
            for device_id, seq, length in rows:
                if need <= 0:
                    break
                self._conn.execute("DELETE FROM outbox WHERE device_id = ? AND seq = ?",
                                   (device_id, seq))
                self._bytes -= int(length)
                need -= int(length)
                self.evicted[victim] += 1
                log.warning("outbox over budget: dropped a record",
                            extra={"device_id": device_id, "priority": victim.name.lower()})
        return need <= 0 or priority is Priority.EVENT

    def _trim(self, device_id: str, priority: Priority, keep: int) -> None:
        rows = self._conn.execute(
            "SELECT seq, LENGTH(payload) FROM outbox WHERE device_id = ? AND priority = ? "
            "ORDER BY created_at DESC, seq DESC LIMIT -1 OFFSET ?",
            (device_id, int(priority), keep)).fetchall()
        for seq, length in rows:
            self._conn.execute("DELETE FROM outbox WHERE device_id = ? AND seq = ?",
                               (device_id, seq))
            self._bytes -= int(length)

    def _check_exhausted(self) -> None:
        if self.budget_bytes is not None:
            self.exhausted = self._bytes > self.budget_bytes

    def _rollback(self, exc: BaseException) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"outbox {self.path}: {exc}") from exc

    def pending(
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
        with self._lock:
            rows = self._conn.execute(
                f"SELECT device_id, seq, topic, payload FROM outbox {where}"  # noqa: S608
                "ORDER BY created_at, seq LIMIT ?",
                (*params, limit + len(skip)),
            ).fetchall()
        records = [OutboxRecord(r[0], r[1], r[2], bytes(r[3])) for r in rows]
        return [r for r in records if (r.device_id, r.seq) not in skip][:limit]

    def delete(self, keys: Iterable[tuple[str, int]]) -> None:
        """Remove acknowledged records."""
        items = list(keys)
        if not items:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                freed = 0
                for device_id, seq in items:
                    row = self._conn.execute(
                        "DELETE FROM outbox WHERE device_id = ? AND seq = ? "
                        "RETURNING LENGTH(payload)", (device_id, seq)).fetchone()
                    freed += int(row[0]) if row else 0
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback(exc)
                raise
            self._bytes -= freed
            self._check_exhausted()

    def depth(self, device_id: str | None = None) -> int:
        """Records waiting (for one device, or all)."""
        with self._lock:
            if device_id is None:
                row = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM outbox WHERE device_id = ?", (device_id,)
                ).fetchone()
        return int(row[0])

    def last_seq(self, device_id: str) -> int:
        """Highest seq ever allocated for ``device_id``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT last_seq FROM seqs WHERE device_id = ?", (device_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def get_state(self, key: str) -> str | None:
        """A small state value, or None."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def state_items(self, prefix: str) -> list[tuple[str, str]]:
        """State values whose key starts with ``prefix``, by key."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, value FROM state WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix)).fetchall()
        return [(str(k), str(v)) for k, v in rows]

    def put_state(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) a small state value durably."""
        with self._lock:
            try:
                if value is None:
                    self._conn.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    self._conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
            except sqlite3.Error as exc:
                raise StorageError(f"outbox {self.path}: {exc}") from exc

    def limit_pages(self, pages: int) -> None:
        """Cap the database file at ``pages`` pages (SQLite ``max_page_count``).

        Writes beyond it fail exactly as on a full disk; tests use this to
        exercise the full-disk path without filling a real file system.
        """
        with self._lock:
            self._conn.execute(f"PRAGMA max_page_count = {int(pages)}")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    @classmethod
    def open_resilient(cls, path: Path, *, budget_bytes: int | None,
                       device_id: str) -> tuple[Outbox, str | None]:
        """Open ``path``; if that is impossible (read-only or full file system), fall
        back to an in-memory outbox that continues the device's seq, and say why."""
        try:
            return cls(path, budget_bytes=budget_bytes), None
        except (StorageError, OSError) as exc:
            reason = str(exc)
        last = 0
        try:
            with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as ro:
                row = ro.execute("SELECT last_seq FROM seqs WHERE device_id = ?",
                                 (device_id,)).fetchone()
                last = int(row[0]) if row else 0
        except sqlite3.Error:
            pass  # nothing readable: the server will see the seq restart as a gap/duplicate
        log.error("outbox not writable; keeping records in memory only",
                  extra={"device_id": device_id, "path": str(path), "reason": reason})
        memory = cls(":memory:", budget_bytes=budget_bytes, start_seq={device_id: last})
        return memory, reason

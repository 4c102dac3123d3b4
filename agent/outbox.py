"""The durable outbox: every record is on disk before it is published.

A record gets its ``seq`` and is written in one SQLite transaction, so the
sequence survives reboots and never repeats; it is deleted only after the
broker's PUBACK. One file can hold several devices' outboxes (the fleet
simulator uses that). SQLite here is the blocking ``sqlite3`` module: callers
on an event loop go through ``asyncio.to_thread`` (see ``agent.link``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from doorwatch.errors import StorageError

__all__ = ["Outbox", "OutboxRecord"]

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
"""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A record waiting for the broker's acknowledgement."""

    device_id: str
    seq: int
    topic: str
    payload: bytes


class Outbox:
    """A SQLite-backed queue of records with per-device sequence numbers."""

    def __init__(self, path: Path, *, durable: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an event acknowledged to the door logic is on the SD card.
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open outbox {path}: {exc}") from exc

    def append(self, device_id: str, topic: str, build: Callable[[int], bytes]) -> int:
        """Allocate the next seq, build the payload with it and store both atomically."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute(
                    "SELECT last_seq FROM seqs WHERE device_id = ?", (device_id,)
                ).fetchone()
                seq = (row[0] if row else 0) + 1
                payload = build(seq)
                self._conn.execute(
                    "INSERT INTO seqs (device_id, last_seq) VALUES (?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq",
                    (device_id, seq),
                )
                self._conn.execute(
                    "INSERT INTO outbox (device_id, seq, topic, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (device_id, seq, topic, payload, time.time()),
                )
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"outbox {self.path}: {exc}") from exc
                raise
            return seq

    def pending(self, limit: int, exclude: Iterable[tuple[str, int]] = ()) -> list[OutboxRecord]:
        """Oldest records not in ``exclude`` (those already handed to the MQTT client)."""
        skip = set(exclude)
        with self._lock:
            rows = self._conn.execute(
                "SELECT device_id, seq, topic, payload FROM outbox ORDER BY created_at, seq LIMIT ?",
                (limit + len(skip),),
            ).fetchall()
        records = [OutboxRecord(r[0], r[1], r[2], bytes(r[3])) for r in rows]
        return [r for r in records if (r.device_id, r.seq) not in skip][:limit]

    def delete(self, keys: Iterable[tuple[str, int]]) -> None:
        """Remove acknowledged records."""
        items = list(keys)
        if not items:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM outbox WHERE device_id = ? AND seq = ?", items)
            self._conn.execute("COMMIT")

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

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

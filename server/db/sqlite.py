"""SQLite backend (aiosqlite) in WAL mode: the embedded default."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from doorwatch.errors import StorageError
from server.db.base import Params, Row

__all__ = ["SqliteDatabase"]

# Bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32).
_MAX_PARAMS = 32766


class _SqliteTransaction:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection):
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, tuple(params))
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._conn.execute(sql, tuple(params))
        rows = await cursor.fetchall()
        names = [d[0] for d in cursor.description or ()]
        await cursor.close()
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self._conn.execute_fetchall(sql, tuple(params))]

    async def insert_rows(
        self, table: str, columns: Sequence[tuple[str, str]], values: list[Any], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        width = len(columns)
        names = ", ".join(name for name, _ in columns)
        row_marks = "(" + ", ".join("?" * width) + ")"
        per_statement = _MAX_PARAMS // width * width
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            marks = ",".join(row_marks for _ in range(len(chunk) // width))
            out += await self.fetch_tuples(
                f"INSERT INTO {table} ({names}) VALUES {marks} {tail}", chunk)  # noqa: S608 - placeholders only
        return out


async def _switch_to_wal(conn: aiosqlite.Connection, attempts: int = 200) -> None:
    """Turn on WAL, retrying: SQLite answers "locked" at once (without its busy
    handler) while another process opening the same new file holds the lock."""
    for attempt in range(attempts):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)


class SqliteDatabase:
    """One aiosqlite connection; transactions are serialized by an asyncio lock.

    SQLite allows one writer at a time anyway; serializing in-process avoids
    interleaving two tasks' statements on the shared connection. ``BEGIN
    IMMEDIATE`` takes the write lock up front so another process (an admin
    CLI) waits on ``busy_timeout`` instead of failing mid-transaction.
    """

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str):
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        """Open (creating) the database file at ``path`` in WAL mode."""
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(target, isolation_level=None)
            # First: switching to WAL needs a lock that another process opening the
            # same file at the same moment may hold; wait for it instead of failing.
            await conn.execute("PRAGMA busy_timeout=10000")
            await _switch_to_wal(conn)
            # FULL: a commit is on disk before we acknowledge the MQTT message.
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {target}: {exc}") from exc
        return cls(conn, target)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTransaction]:
        """Run statements in one transaction; commit on success, roll back on error."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read-only query."""
        async with self._lock:
            return await _SqliteTransaction(self._conn).fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a read-only query and return the first row."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

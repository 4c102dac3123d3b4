"""SQLite backend in WAL mode: the embedded default.

One connection, owned by one thread. Why not aiosqlite (which is that thread
and a queue): each statement is a round trip to the event loop, and while the
loop validates the next batch each trip waits for it; ingest's transaction
makes about ten of them. :meth:`SqliteDatabase.run` instead runs a whole
transaction's code on the database thread in one hop (figures in
bench/NOTES.md, session 4). Other callers still get a statement-per-hop
:class:`Transaction`.

Reads outside a transaction (:meth:`SqliteDatabase.fetch_all`: the dashboard,
the API, the periodic jobs' scans) go to a second, read-only connection through
aiosqlite, where its model fits: WAL lets a reader see every committed
transaction without waiting for the writer, so a dashboard page does not queue
behind an ingest backlog on the writer's thread and lock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from ground.errors import StorageError
from server.db.base import Params, Row, Transaction

__all__ = ["SqliteDatabase"]

T = TypeVar("T")

# Bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32).
_MAX_PARAMS = 32766


def _bindable(params: Params) -> Sequence[Any]:
    # A list is bound as it is: the ingest insert's thousands of values are not copied.
    return params if isinstance(params, list | tuple) else tuple(params)


class _Statements:
    """The statements a transaction runs, synchronously, on the database thread."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        cursor = self.conn.execute(sql, _bindable(params))
        count = cursor.rowcount
        cursor.close()
        return count

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.conn.executemany(sql, [tuple(r) for r in rows]).close()

    def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self.conn.execute(sql, _bindable(params))
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description or ()]
        cursor.close()
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetch_tuples(
        self, columns: Sequence[str], rest: str, params: Params = ()
    ) -> list[tuple[Any, ...]]:
        # Every row sqlite3 steps through gives up the GIL and waits to get it back
        # from the event loop's thread: all rows come as one JSON array in one row.
        packed = self.scalar(
            f"SELECT json_group_array(json_array({', '.join(columns)})) {rest}", params)
        return [tuple(row) for row in json.loads(packed)]

    def scalar(self, sql: str, params: Params = ()) -> Any:
        cursor = self.conn.execute(sql, _bindable(params))
        row = cursor.fetchone()
        cursor.close()
        return row[0]

    def insert_rows(
        self, table: str, columns: Sequence[tuple[str, str]], values: list[Any],
        conflict: str = "", returning: str = "",
    ) -> list[tuple[Any, ...]]:
        # Not SQLite's own RETURNING: it yields the rows one sqlite3_step at a time and
        # Python's sqlite3 gives up and retakes the GIL around each, so a thousand rows
        # wait a thousand times for the event loop's thread to let go of it. The rows
        # this statement inserted are those above the highest id before it (we hold the
        # write lock), read back packed into one JSON row.
        before = self.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {table}") if returning else 0  # noqa: S608 - fixed table name
        width = len(columns)
        names = ", ".join(name for name, _ in columns)
        row_marks = "(" + ", ".join("?" * width) + ")"
        per_statement = _MAX_PARAMS // width * width
        inserted = 0
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            marks = ",".join(row_marks for _ in range(len(chunk) // width))
            inserted += self.execute(
                f"INSERT INTO {table} ({names}) VALUES {marks} {conflict}", chunk)  # noqa: S608 - placeholders only
        if not returning or not inserted:
            return []
        return self.fetch_tuples([column.strip() for column in returning.split(",")],
                                 f"FROM {table} WHERE id > ?", (before,))


class _Runner(Protocol):
    """How a transaction's statement reaches the database thread."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


async def _here(fn: Callable[..., T], /, *args: Any) -> T:
    """Run a statement at once: the caller is the database thread (SqliteDatabase.run)."""
    return fn(*args)


class _SqliteTransaction:
    """A transaction's statements, each run through ``runner``.

    From the event loop, the runner is a hop to the database thread per
    statement; in :meth:`SqliteDatabase.run`, the code already runs there and
    each statement runs as it is awaited (the coroutines never suspend).
    """

    dialect = "sqlite"

    def __init__(self, statements: _Statements, runner: _Runner):
        self._sync = statements
        self._run = runner

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._run(self._sync.execute, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self._run(self._sync.executemany, sql, rows)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._run(self._sync.fetch_all, sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_tuples(
        self, columns: Sequence[str], rest: str, params: Params = ()
    ) -> list[tuple[Any, ...]]:
        return await self._run(self._sync.fetch_tuples, columns, rest, params)

    async def insert_rows(
        self, table: str, columns: Sequence[tuple[str, str]], values: list[Any],
        conflict: str = "", returning: str = "",
    ) -> list[tuple[Any, ...]]:
        return await self._run(self._sync.insert_rows, table, columns, values, conflict,
                               returning)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, on this (loop-less) thread."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("work given to SqliteDatabase.run awaited something other than "
                       "its transaction's statements")


def _switch_to_wal(conn: sqlite3.Connection, attempts: int = 200) -> None:
    """Turn on WAL, retrying: SQLite answers "locked" at once (without its busy
    handler) while another process opening the same new file holds the lock."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)  # on the database thread, before anything else is queued


def _connect(target: str) -> sqlite3.Connection:
    """Open and set up the connection (on the database thread, which keeps it)."""
    # Autocommit mode: transactions are our own BEGIN IMMEDIATE ... COMMIT.
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        # First: switching to WAL needs a lock that another process opening the
        # same new file at the same moment may hold; wait for it instead of failing.
        conn.execute("PRAGMA busy_timeout=10000")
        _switch_to_wal(conn)
        # FULL: a commit is on disk before we acknowledge the MQTT message.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


async def _open_reader(target: str) -> aiosqlite.Connection:
    """The read connection: WAL already on (the writer set it), writes refused."""
    reader = await aiosqlite.connect(target, isolation_level=None)
    try:
        await reader.execute("PRAGMA busy_timeout=10000")
        await reader.execute("PRAGMA query_only=ON")
    except BaseException:
        await reader.close()
        raise
    return reader


class SqliteDatabase:
    """One connection on its own thread; transactions are serialized by an asyncio lock.

    SQLite allows one writer at a time anyway; serializing in-process avoids
    interleaving two tasks' statements on the shared connection. ``BEGIN
    IMMEDIATE`` takes the write lock up front so another process (an admin
    CLI) waits on ``busy_timeout`` instead of failing mid-transaction.
    """

    dialect = "sqlite"

    def __init__(self, statements: _Statements, executor: ThreadPoolExecutor, path: str,
                 reader: aiosqlite.Connection | None = None):
        self.statements = statements
        self._executor = executor
        self._lock = asyncio.Lock()
        self._reader = reader
        self.path = path

    @classmethod
    async def open(cls, path: str | Path) -> SqliteDatabase:
        """Open (creating) the database file at ``path`` in WAL mode."""
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, target)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StorageError(f"cannot open SQLite database {target}: {exc}") from exc
        reader = None
        if target != ":memory:":  # an in-memory database is the writer's alone
            try:
                reader = await _open_reader(target)
            except sqlite3.Error as exc:
                await loop.run_in_executor(executor, conn.close)
                executor.shutdown(wait=False)
                raise StorageError(f"cannot open SQLite database {target}: {exc}") from exc
        return cls(_Statements(conn), executor, target, reader)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the database thread."""
        job: Callable[[], T] = functools.partial(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTransaction]:
        """Run statements in one transaction; commit on success, roll back on error."""
        async with self._lock:
            await self.call(self.statements.execute, "BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self.statements, self.call)
            except BaseException:
                await self.call(self.statements.execute, "ROLLBACK")
                raise
            await self.call(self.statements.execute, "COMMIT")

    async def run(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` in one transaction, all of it on the database thread in one hop.

        ``work`` may await only its transaction's statements (they complete at
        once there); it must not touch the event loop. If the caller is
        cancelled meanwhile, the transaction still finishes on the thread.
        """
        async with self._lock:
            return await self.call(self._run_here, work)

    def _run_here(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        statements = self.statements
        statements.execute("BEGIN IMMEDIATE")
        try:
            result = _drive(work(_SqliteTransaction(statements, _here)))
        except BaseException:
            statements.execute("ROLLBACK")
            raise
        statements.execute("COMMIT")
        return result

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read-only query on the read connection (never waiting for the writer)."""
        if self._reader is None:
            async with self._lock:
                return await self.call(self.statements.fetch_all, sql, params)
        async with self._reader.execute(sql, _bindable(params)) as cursor:
            rows = await cursor.fetchall()
            names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a read-only query and return the first row."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def close(self) -> None:
        """Close the connections and stop their threads."""
        try:
            if self._reader is not None:
                await self._reader.close()
            await self.call(self.statements.conn.close)
        finally:
            self._executor.shutdown(wait=False)

"""SQLite backend in WAL mode: the embedded default.

One writing connection, owned by one thread of our own: the one place in
doorwatch where SQLite is driven through plain ``sqlite3`` on a thread instead
of aiosqlite (which the agent's outbox and this module's read connection use),
and this is the reason, written here once. aiosqlite is that same thread with
a queue, but it takes one round trip to the event loop per statement and has no
public way to run a function of ours on its thread; during a backlog drain the
loop is busy validating the next batch, so every trip waits for it, and the
bulk write of a batch is about ten of them. Owning the thread lets ingest's
batch writer (server/ingest/sqlite_writer.py) do its whole bulk write in one
hop through :meth:`SqliteTransaction.run_sync`, synchronous code on the
database thread, and commit in that same hop when the batch needs nothing
else. The rest of a transaction's statements take a hop each, as they would
with aiosqlite (they run on the event loop, as all the server's code does).

Reads outside a transaction (:meth:`SqliteDatabase.fetch_all`: the dashboard,
the API, the periodic jobs' scans) go to a second, read-only connection through
aiosqlite, where its model fits: WAL lets a reader see every committed
transaction without waiting for the writer, so a dashboard page does not queue
behind an ingest backlog on the writer's thread and lock.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ground.errors import StorageError
from server.db.base import Params, Row

__all__ = ["SqliteDatabase", "SqliteTransaction"]

T = TypeVar("T")


def _bindable(params: Params) -> Sequence[Any]:
    # A list is bound as it is: a bulk insert's thousands of values are not copied.
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

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        # Not after a commit that already happened on this thread (the caller was
        # cancelled while the committing hop ran).
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class SqliteTransaction:
    """A transaction on the writing connection; each statement a hop to its thread.

    ``BEGIN IMMEDIATE`` goes with the first statement's hop, and ``COMMIT``
    with the last hop when :meth:`run_sync` is told it may commit.
    """

    dialect = "sqlite"

    def __init__(self, statements: _Statements, call: Callable[..., Awaitable[Any]]):
        self._sync = statements
        self._call = call
        self.begun = False
        self.committed = False

    def _open(self) -> None:
        if self.committed:
            raise RuntimeError("statement after this transaction committed")
        if not self.begun:
            self._sync.begin()
            self.begun = True

    def _here(self, fn: Callable[..., T], /, *args: Any) -> T:
        self._open()
        return fn(*args)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await self._call(self._here, self._sync.execute, sql, params)  # type: ignore[no-any-return]

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self._call(self._here, self._sync.executemany, sql, rows)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._call(self._here, self._sync.fetch_all, sql, params)  # type: ignore[no-any-return]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def run_sync(
        self, fn: Callable[[sqlite3.Connection], T], commit_if: Callable[[T], bool] | None = None
    ) -> T:
        """``fn(connection)`` on the database thread in one hop, inside this transaction.

        For ingest's batch writer only: ``fn`` is synchronous code that must not
        touch the event loop. When ``commit_if(result)`` is true, the transaction
        commits in the same hop and takes no more statements (:attr:`committed`).
        """
        return await self._call(self._run_sync, fn, commit_if)  # type: ignore[no-any-return]

    def _run_sync(self, fn: Callable[[sqlite3.Connection], T],
                  commit_if: Callable[[T], bool] | None) -> T:
        self._open()
        result = fn(self._sync.conn)
        if commit_if is not None and commit_if(result):
            self._sync.conn.execute("COMMIT")
            self.committed = True
        return result

    def _finish(self) -> None:
        if self.begun and not self.committed:
            self._sync.conn.execute("COMMIT")
            self.committed = True


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
    # Rows that carry their column names, so that a read is one trip to the reader's
    # thread (execute_fetchall) rather than three (execute, fetchall, close).
    reader.row_factory = sqlite3.Row
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
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """Run statements in one transaction; commit on success, roll back on error."""
        async with self._lock:
            tx = SqliteTransaction(self.statements, self.call)
            try:
                yield tx
            except BaseException:
                if tx.begun:
                    await self.call(self.statements.rollback)
                raise
            if tx.begun and not tx.committed:
                await self.call(tx._finish)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read-only query on the read connection (never waiting for the writer)."""
        if self._reader is None:
            async with self._lock:
                return await self.call(self.statements.fetch_all, sql, params)
        # One trip to the reader's thread and back: during a backlog drain each trip
        # waits for the event loop, busy validating batches, to take up the result
        # (bench/NOTES.md, "Dashboard reads during a drain, diagnosed").
        rows = list(await self._reader.execute_fetchall(sql, _bindable(params)))
        if not rows:
            return []
        names = rows[0].keys()
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

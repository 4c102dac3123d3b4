"""PostgreSQL backend (asyncpg pool): for several server instances sharing one database.

Queries are written once with ``?`` placeholders (see :mod:`server.db.base`);
this module rewrites them to PostgreSQL's ``$1, $2, ...`` (skipping string
literals and quoted names) and caches the result, so the stores never know
which database they run on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from ground.errors import StorageError
from server.db.base import Params, Row

__all__ = ["PostgresDatabase", "PostgresTransaction", "translate_placeholders"]


@lru_cache(maxsize=1024)
def translate_placeholders(sql: str) -> str:
    """Rewrite ``?`` placeholders as ``$n``, leaving quoted text untouched."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
            out.append(char)
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


def _rowcount(status: str) -> int:
    """Rows changed, from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTransaction:
    """Statements on one pooled connection inside its transaction."""

    dialect = "postgresql"

    def __init__(self, conn: Any):
        self._conn = conn

    @property
    def connection(self) -> Any:
        """The asyncpg connection: for ingest's batch writer (server/ingest/postgres_writer.py)."""
        return self._conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        status = await self._conn.execute(translate_placeholders(sql), *params)
        return _rowcount(str(status))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            await self._conn.executemany(translate_placeholders(sql), [tuple(r) for r in rows])

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        records = await self._conn.fetch(translate_placeholders(sql), *params)
        return [dict(record) for record in records]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None


class PostgresDatabase:
    """A pool of asyncpg connections; each transaction holds one connection.

    Unlike SQLite, several transactions (and several server instances) run
    concurrently; code that must happen once uses conditional UPDATEs or
    advisory locks, never in-process locks.
    """

    dialect = "postgresql"

    def __init__(self, pool: Any, url: str):
        self._pool = pool
        self.url = url

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDatabase:
        """Connect a pool to ``url`` (``postgresql://user@host:port/db?search_path=...``)."""
        dsn = "postgresql://" + url.split("://", 1)[1]
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                             command_timeout=60)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {_redact(url)}: {exc}") from exc
        return cls(pool, url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """Run statements in one transaction; commit on success, roll back on error."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read-only query on any pooled connection."""
        async with self._pool.acquire() as conn:
            return await PostgresTransaction(conn).fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a read-only query and return the first row."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()


def _redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"

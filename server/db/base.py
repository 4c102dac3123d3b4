"""The database interface the server's stores are written against.

SQL is written once with ``?`` placeholders and a few dialect tokens in the
schema; each backend translates. That keeps one set of queries for SQLite
(the embedded default) and PostgreSQL (several server instances).

Everything here runs on the event loop. The ingest path's bulk writes, each
backend in its own fastest form, are behind their own door
(server/ingest/writer.py), not in this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ["Database", "Params", "Row", "Transaction"]

Row = dict[str, Any]
Params = Sequence[Any]


class Transaction(Protocol):
    """Statements run inside one database transaction."""

    dialect: str

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for each parameter tuple."""
        ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query (or a statement with RETURNING) and return all rows."""
        ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, if any."""
        ...


class Database(Protocol):
    """A connection (pool) to SQLite or PostgreSQL."""

    dialect: str

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction, committed on normal exit, rolled back on error."""
        ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read-only query in its own short transaction."""
        ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a read-only query and return its first row, if any."""
        ...

    async def close(self) -> None:
        """Close the connection(s)."""
        ...



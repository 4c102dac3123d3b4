"""The database interface the server's stores are written against.

SQL is written once with ``?`` placeholders and a few dialect tokens in the
schema; each backend translates. That keeps one set of queries for SQLite
(the embedded default) and PostgreSQL (several server instances).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

__all__ = ["Database", "Params", "Row", "Transaction"]

T = TypeVar("T")

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

    async def fetch_tuples(
        self, columns: Sequence[str], rest: str, params: Params = ()
    ) -> list[tuple[Any, ...]]:
        """The rows of ``SELECT <columns> <rest>`` as tuples, for the ingest path.

        ``columns`` are plain text, integer or null columns (they may travel as
        JSON): SQLite packs all rows into one, because Python's sqlite3 gives up
        and retakes the GIL for every row it steps through.
        """
        ...

    async def insert_rows(
        self, table: str, columns: Sequence[tuple[str, str]], values: list[Any],
        conflict: str = "", returning: str = "",
    ) -> list[tuple[Any, ...]]:
        """Insert many rows at once; return ``returning``'s columns of the rows inserted.

        ``columns`` are (name, SQL type: ``text`` or ``bigint``); ``values`` holds
        the rows one after another in one flat list, ``len(columns)`` values each;
        ``conflict`` is an ``ON CONFLICT ...`` clause; ``returning`` plain column
        names (the table has an integer ``id`` key). The ingest path's bulk
        insert: each backend uses its fastest form (SQLite multi-row VALUES read
        back in one packed row, PostgreSQL one array per column and RETURNING).
        """
        ...


class Database(Protocol):
    """A connection (pool) to SQLite or PostgreSQL."""

    dialect: str

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Open a transaction, committed on normal exit, rolled back on error."""
        ...

    async def run(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        """Run ``work(tx)`` in one transaction (committed if it returns) and return its result.

        For the hot path: SQLite runs all of ``work`` on its database thread in
        one hop, so ``work`` may await only ``tx``'s statements.
        """
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



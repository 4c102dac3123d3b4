"""Database access: one interface, SQLite and PostgreSQL backends, migrations."""

from __future__ import annotations

from doorwatch.errors import ConfigError
from server.db.base import Database, Row, Transaction
from server.db.migrations import migrate
from server.db.sqlite import SqliteDatabase

__all__ = ["Database", "Row", "SqliteDatabase", "Transaction", "migrate", "open_database"]


async def open_database(url: str) -> Database:
    """Open the database named by ``url`` (``sqlite:///path`` or a path) and migrate it."""
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "PostgreSQL is not supported by this version yet; use a sqlite:/// URL",
            field="database_url",
        )
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    db = await SqliteDatabase.open(path)
    await migrate(db)
    return db

"""Opening a database by URL: the backend is chosen by the URL's scheme, then migrated."""

from __future__ import annotations

from ground.errors import ConfigError
from server.db.base import Database
from server.db.migrate import migrate
from server.db.postgres import PostgresDatabase
from server.db.sqlite import SqliteDatabase

__all__ = ["open_database"]

async def open_database(url: str) -> Database:
    """Open the database named by ``url`` and migrate it.

    ``sqlite:///path`` (or a bare path) opens the embedded SQLite file;
    ``postgresql://user@host:port/db`` opens an asyncpg pool.
    """
    db: Database
    if url.startswith(("postgresql://", "postgres://")):
        db = await PostgresDatabase.open(url)
    elif "://" in url and not url.startswith("sqlite:///"):
        raise ConfigError(
            f"unsupported database URL scheme {url.split('://', 1)[0]!r}: "
            "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
            field="database_url",
        )
    else:
        db = await SqliteDatabase.open(url.removeprefix("sqlite:///"))
    try:
        await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db

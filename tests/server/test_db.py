"""The database layer: both backends, placeholders, migrations, concurrency."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from ground.errors import ConfigError
from server.db.base import Database
from server.db.connect import open_database
from server.db.migrate import migrate, migrations
from server.db.postgres import translate_placeholders
from server.db.sqlite import SqliteDatabase


def test_placeholders_translate_outside_quotes_only() -> None:
    sql = "SELECT '?' AS q, \"a?\" FROM t WHERE a = ? AND b IN (?, ?)"
    assert translate_placeholders(sql) == (
        "SELECT '?' AS q, \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3)"
    )


async def test_unknown_url_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="database_url"):
        await open_database("mysql://x@y/z")


async def test_migrations_are_recorded_and_idempotent(db: Database) -> None:
    version = await migrate(db)
    assert version == migrations()[-1][0]
    rows = await db.fetch_all("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == [n for n, _, _ in migrations()]


async def test_returning_on_conflict_and_rowcount(db: Database) -> None:
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO grids (name, created_at) VALUES (?, ?) RETURNING id", ("g1", "t"))
        assert row is not None
        assert int(row["id"]) >= 1
        again = await tx.fetch_all(
            "INSERT INTO grids (name, created_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING RETURNING id", ("g1", "t"))
        assert again == []
        changed = await tx.execute("UPDATE grids SET notes = ? WHERE name = ?", ("n", "g1"))
        assert changed == 1


async def test_a_transaction_runs_on_the_event_loop_and_may_await_anything(
    db: Database,
) -> None:
    """Rules, incidents and notifications run in a transaction on the event loop (only
    ingest's batch writer works on SQLite's thread): awaiting something else inside a
    transaction is fine, and what it wrote before and after is committed together."""
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("before", "t"))
        await event.wait()
        await asyncio.sleep(0.01)  # not a wait: a real suspension inside the transaction
        await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("after", "t"))
    rows = await db.fetch_all("SELECT name FROM grids WHERE name IN ('before', 'after') "
                              "ORDER BY name")
    assert [r["name"] for r in rows] == ["after", "before"]


async def test_failed_transaction_rolls_back(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("g2", "t"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await db.fetch_all("SELECT id FROM grids WHERE name = ?", ("g2",)) == []


async def test_several_instances_migrating_at_once(database_url: str) -> None:
    """Instances starting together must not trip over each other's migrations."""
    opened = await asyncio.gather(*(open_database(database_url) for _ in range(4)))
    try:
        rows = await opened[0].fetch_all("SELECT version FROM schema_migrations")
        assert len(rows) == len(migrations())
    finally:
        for database in opened:
            await database.close()


async def test_a_sqlite_read_wakes_the_event_loop_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read outside a transaction is one trip to SQLite's read connection and back.

    During a backlog drain every wake of the event loop from the reader's thread waits
    for the loop, busy validating batches, so a page's latency grows with the trips its
    reads take (bench/NOTES.md); aiosqlite's cursor made three per read."""
    db = await open_database(f"sqlite:///{tmp_path}/reads.db")
    try:
        assert isinstance(db, SqliteDatabase)
        async with db.transaction() as tx:
            for name in ("g1", "g2"):
                await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)",
                                 (name, "t"))
        loop = asyncio.get_running_loop()
        wakes: list[str] = []
        wake = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
            wakes.append(threading.current_thread().name)
            return wake(callback, *args, **kwargs)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
        rows = await db.fetch_all(
            "SELECT g.name, g.name AS again, 1 AS one FROM grids g ORDER BY g.name")
        assert rows == [{"name": "g1", "again": "g1", "one": 1},
                        {"name": "g2", "again": "g2", "one": 1}]
        assert len(wakes) == 1
        assert await db.fetch_all("SELECT name FROM grids WHERE name = ?", ("none",)) == []
        assert await db.fetch_one("SELECT COUNT(*) AS n FROM grids") == {"n": 2}
        assert len(wakes) == 3
    finally:
        monkeypatch.undo()
        await db.close()

"""The database layer: both backends, placeholders, migrations, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from ground.errors import ConfigError
from server.db.base import Database
from server.db.connect import open_database
from server.db.migrate import migrate, migrations
from server.db.postgres import translate_placeholders


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

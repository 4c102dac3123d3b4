"""The database layer: both backends, placeholders, migrations, concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ground.errors import ConfigError
from server.db.base import Database, Transaction
from server.db.connect import open_database
from server.db.migrations import migrate, migrations
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


_GRID_COLUMNS = (("name", "text"), ("created_at", "text"))


async def test_insert_rows_returns_exactly_the_rows_it_inserted(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("old", "t0"))
    async with db.transaction() as tx:
        rows = await tx.insert_rows(
            "grids", _GRID_COLUMNS,
            ["a", "t1", "old", "t1", "b", "t1", "a", "t1", "c", "t1"],  # a conflict, a repeat
            conflict="ON CONFLICT (name) DO NOTHING", returning="name, id, created_at")
    stored = {r["name"]: int(r["id"]) for r in await db.fetch_all("SELECT name, id FROM grids")}
    assert sorted(rows) == sorted((name, stored[name], "t1") for name in ("a", "b", "c"))
    async with db.transaction() as tx:
        assert await tx.insert_rows("grids", _GRID_COLUMNS, ["a", "t2"],
                                    conflict="ON CONFLICT (name) DO NOTHING",
                                    returning="name, id") == []


async def test_run_commits_what_returns_and_rolls_back_what_raises(db: Database) -> None:
    async def add(tx: Transaction) -> int:
        return await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)",
                                ("kept", "t"))

    async def add_then_fail(tx: Transaction) -> None:
        await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("lost", "t"))
        raise RuntimeError("boom")

    assert await db.run(add) == 1
    with pytest.raises(RuntimeError, match="boom"):
        await db.run(add_then_fail)
    rows = await db.fetch_all("SELECT name FROM grids WHERE name IN ('kept', 'lost')")
    assert [r["name"] for r in rows] == ["kept"]


async def test_sqlite_run_refuses_work_that_waits_on_the_event_loop(tmp_path: Path) -> None:
    """All of ``run``'s work happens on the database thread: an await of anything else
    there could never finish, so it is an error (and the transaction is rolled back)."""
    db = await open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")

    async def sleeps(tx: Transaction) -> None:
        await tx.execute("INSERT INTO grids (name, created_at) VALUES (?, ?)", ("x", "t"))
        await asyncio.sleep(0)

    try:
        with pytest.raises(RuntimeError, match="awaited something other"):
            await db.run(sleeps)
        assert await db.fetch_all("SELECT name FROM grids") == []
    finally:
        await db.close()


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

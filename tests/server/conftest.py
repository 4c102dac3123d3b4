"""Fixtures for the server suite: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests use one fresh database per test session (``CREATE DATABASE``
with a random name, dropped at the end) and one fresh schema per test, so
parallel runs and earlier runs never collide. Without a reachable PostgreSQL
they skip with the reason, or fail when ``DOORWATCH_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest

from ground.timeutil import utcnow
from server.clock import ManualClock
from server.db.base import Database
from server.db.connect import open_database
from tests.requirements import need
from tests.server.helpers import EventFeeder, settings_for

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get(
    "DOORWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _create_database() -> tuple[str | None, str]:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return None, f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
    name = f"doorwatch_test_{secrets.token_hex(6)}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, ""


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _run_in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a private event loop (the caller may be inside one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[tuple[str | None, str]]:
    """(URL of a fresh database for this session, or None and why not)."""
    name, reason = _run_in_thread(_create_database())
    if name is None:
        yield None, reason
        return
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}", ""
    _run_in_thread(_drop_database(name))


async def _fresh_schema(session_url: str) -> str:
    schema = f"t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(session_url, timeout=5)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return f"{session_url}?search_path={schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A URL of an empty database: SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/server.db"
    # Asked for only here, so a run of SQLite tests never touches PostgreSQL.
    session_url, reason = request.getfixturevalue("pg_session_database")
    need("postgres", session_url is not None, reason)
    assert session_url is not None
    return await _fresh_schema(session_url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open, migrated database (each test gets its own)."""
    database = await open_database(database_url)
    yield database
    await database.close()


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand, starting at a fixed moment."""
    return ManualClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def now() -> datetime:
    """Event times close to the real clock (ingest stamps receipt with it)."""
    return utcnow().replace(microsecond=0)


@pytest.fixture
def feeder(db: Database, database_url: str) -> EventFeeder:
    """Events through a real Ingestor on the test database (incidents fold within 10 min)."""
    return EventFeeder(db, settings_for(database_url, rules={"fold_window_s": 600}))

"""Fixtures for the fault suite: fresh PostgreSQL databases and provisioned fleets."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from server.admin import register_device
from server.db.connect import open_database
from tests.conftest import Mosquitto
from tests.requirements import need

PG_ADMIN_URL = os.environ.get(
    "DOORWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"doorwatch_fault_{secrets.token_hex(5)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        need("postgres", False, f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def provision_fleet(broker: Mosquitto, db_url: str, count: int, folder: Path,
                    prefix: str = "fleet") -> Path:
    """Broker credentials and server registration for ``count`` devices; return the creds file."""
    passwords = {f"{prefix}-{i:03d}": broker.add_device(f"{prefix}-{i:03d}", reload=False)
                 for i in range(count)}
    broker.reload()

    async def register() -> None:
        db = await open_database(db_url)
        try:
            for device_id in passwords:
                await register_device(db, device_id, household_id=None)
        finally:
            await db.close()

    asyncio.run(register())
    creds = folder / "fleet-creds.json"
    creds.write_text(json.dumps(passwords))
    return creds

"""Fixtures: a migrated SQLite database with seeded grids and users, the app, a client.

Seeding hashes five passwords with argon2 and runs every migration; it is done
once per session into a template file that each test copies, to keep the
suite fast.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.config import ServerSettings, load_server_settings
from server.db.base import Database
from server.db.connect import open_database
from server.web.app import create_app
from tests.web.helpers import Seed, seed


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seed]:
    """A seeded database file to copy, and what it contains."""
    path = tmp_path_factory.mktemp("web-template") / "web.db"

    async def build() -> Seed:
        db = await open_database(f"sqlite:///{path}")
        try:
            return await seed(db)
        finally:
            await db.close()

    return path, asyncio.run(build())


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    """Server settings with a database in ``tmp_path``."""
    return load_server_settings(None, database_url=f"sqlite:///{tmp_path / 'web.db'}",
                                data_dir=str(tmp_path / "data"), instance="web-test")


@pytest.fixture
def seeded(seeded_template: tuple[Path, Seed], tmp_path: Path) -> Seed:
    """Two grids with workers, households, devices, incidents, and a user of every role."""
    template, contents = seeded_template
    shutil.copy(template, tmp_path / "web.db")
    return contents


@pytest.fixture
async def db(settings: ServerSettings, seeded: Seed) -> AsyncIterator[Database]:
    """The migrated, seeded database."""
    database = await open_database(settings.database_url)
    yield database
    await database.close()


@pytest.fixture
async def client(db: Database, settings: ServerSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app (HTTPS base URL, so the Secure cookie is sent)."""
    app = await create_app(db, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http

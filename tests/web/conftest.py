"""Fixtures: a migrated SQLite database with seeded grids and users, the app, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.config import ServerSettings, load_server_settings
from server.db import Database, open_database
from server.web import create_app
from tests.web.helpers import Seed, seed


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    """Server settings with a database in ``tmp_path``."""
    return load_server_settings(None, database_url=f"sqlite:///{tmp_path / 'web.db'}",
                                data_dir=str(tmp_path / "data"), instance="web-test")


@pytest.fixture
async def db(settings: ServerSettings) -> AsyncIterator[Database]:
    """The migrated database."""
    database = await open_database(settings.database_url)
    yield database
    await database.close()


@pytest.fixture
async def seeded(db: Database) -> Seed:
    """Two grids with workers, households, devices, incidents, and a user of every role."""
    return await seed(db)


@pytest.fixture
async def client(db: Database, settings: ServerSettings, seeded: Seed
                 ) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app (HTTPS base URL, so the Secure cookie is sent)."""
    app = await create_app(db, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http

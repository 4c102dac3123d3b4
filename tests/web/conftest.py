"""Fixtures: a migrated SQLite database with seeded grids and users, the app, a client.

Seeding hashes five passwords with argon2 and runs every migration; it is done
once per session into a template file that each test copies, to keep the
suite fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server.config import ServerSettings, load_server_settings
from server.db.base import Database
from server.db.connect import open_database
from server.web.app import create_app
from server.web.runner import WebServer, _bind
from tests.waiting import wait_until_async
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


@dataclass
class Served:
    """The app served by uvicorn on a loopback port, as ``server run`` serves it."""

    url: str
    app: FastAPI

    def client(self, source: str = "127.0.0.1") -> httpx.AsyncClient:
        """An HTTP client whose connections come from ``source`` (any 127.x.y.z address)."""
        transport = httpx.AsyncHTTPTransport(local_address=source)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=30)


@pytest.fixture
async def served(db: Database, settings: ServerSettings) -> AsyncIterator[Served]:
    """The dashboard on a real socket (plain HTTP, so the cookie is not Secure-only)."""
    settings.http = settings.http.model_copy(update={"cookie_secure": False})
    app = await create_app(db, settings)
    web = WebServer(app, _bind("127.0.0.1", 0))
    task = asyncio.create_task(web.run())
    async with httpx.AsyncClient() as probe:

        async def healthy() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await probe.get(f"{web.url}/healthz")).status_code == 200
            return False

        await wait_until_async(healthy, "the dashboard's /healthz", every=0.02)
    yield Served(web.url, app)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

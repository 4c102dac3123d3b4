"""Seeding and logging in for the dashboard tests; the live server the browser tests share."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import uuid4

import httpx

from ground.timeutil import now_ts
from server.admin import add_household, add_worker, register_device
from server.db.base import Database
from server.db.event_key import event_key
from server.domain import people
from server.domain.incident_opening import IncidentKind, open_or_fold
from server.service import RunningServer, serve
from server.web.users import create_user
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings

if TYPE_CHECKING:
    from playwright.async_api import Page

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Seed:
    """Two grids, a worker in each, a household and device in each, an incident in each."""

    grids: dict[str, int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    households: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)


async def add_grid(db: Database, name: str) -> int:
    """A grid row (the domain's grid functions may replace this)."""
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO grids (name, created_at) VALUES (?, ?) RETURNING id", (name, now_ts()))
        assert row is not None
        return int(row["id"])


async def open_incident(db: Database, household_id: int, device_id: str,
                        kind: IncidentKind = IncidentKind.BREACH) -> int:
    """An incident as the rules would open it, with one stored event."""
    at = now_ts()
    event_id = uuid4()  # a real one: events are unique by its key (server/db/event_key.py)
    async with db.transaction() as tx:
        event = await tx.fetch_one(
            "INSERT INTO events (device_id, seq, event_id, event_key, type, kind, device_time, "
            "received_at, payload) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events "
            "WHERE device_id = ?), ?, ?, 'event', 'exit', ?, ?, '{}') RETURNING id",
            (device_id, device_id, str(event_id), event_key(event_id), at, at))
        assert event is not None
        opened = await open_or_fold(tx, household_id=household_id, device_id=device_id,
                                    kind=kind, severity="high", event_row_id=int(event["id"]),
                                    at=at, fold_window_s=0)
    return opened.incident_id


async def seed(db: Database) -> Seed:
    """Grids east/west, each with a worker, household, device, open incident, and users."""
    s = Seed()
    for grid in ("east", "west"):
        s.grids[grid] = await add_grid(db, f"{grid}-grid")
        s.workers[grid] = await add_worker(db, f"worker-{grid}", apprise_urls=[],
                                           language="zh_CN")
        async with db.transaction() as tx:
            await tx.execute("UPDATE workers SET grid_id = ? WHERE id = ?",
                             (s.grids[grid], s.workers[grid]))
        s.households[grid] = await add_household(db, f"{grid} family", f"{grid} road 1",
                                                 worker_id=s.workers[grid])
        async with db.transaction() as tx:
            await tx.execute("UPDATE households SET grid_id = ? WHERE id = ?",
                             (s.grids[grid], s.households[grid]))
        await register_device(db, f"door-{grid}", household_id=s.households[grid])
        s.incidents[grid] = await open_incident(db, s.households[grid], f"door-{grid}")
    await create_user(db, "admin", PASSWORD, "admin", language="en")
    await create_user(db, "super", PASSWORD, "supervisor", language="zh_CN")
    await create_user(db, "east", PASSWORD, "worker", worker_id=s.workers["east"])
    await create_user(db, "west", PASSWORD, "worker", worker_id=s.workers["west"])
    await create_user(db, "fitter", PASSWORD, "installer", language="en")
    return s


def csrf_from(html: str) -> str:
    """The CSRF token in a page's forms."""
    match = _CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; return the session's CSRF token."""
    page = await client.get("/login")
    response = await client.post("/login", data={"username": username, "password": password,
                                                 "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303, response.text
    session = await client.get("/api/session")
    assert session.status_code == 200
    return str(session.json()["csrf_token"])


class Live(NamedTuple):
    """The whole server started by ``serve``, what was seeded, the dashboard's URL, the database."""

    server: RunningServer
    contents: Seed
    base: str
    db: Database


@contextlib.asynccontextmanager
async def live_server(tmp_path: Path, broker: Mosquitto, **overrides: Any) -> AsyncIterator[Live]:
    """The whole server on ``broker``, its dashboard on a free port, seeded and subscribed.

    ``overrides`` are settings sections as for ``server_settings``; ``http`` is merged
    into the dashboard's ``enabled`` on port 0.
    """
    http = {"enabled": True, "port": 0, **overrides.pop("http", {})}
    async with serve(server_settings(tmp_path, broker, http=http, **overrides)) as server:
        assert server.web is not None
        contents = await seed(server.db)
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        yield Live(server, contents, server.web.url, server.db)


async def browser_login(page: object, base: str, username: str) -> None:
    """Log ``username`` in through the login form of a Playwright page."""
    from playwright.async_api import Page

    assert isinstance(page, Page)
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def logged_in_page(browser: object, base: str, username: str,
                         **context_options: Any) -> Page:
    """A page in a new browser context (``context_options``), ``username`` logged in."""
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    await browser_login(page, base, username)
    return page


async def notify_worker_at(db: Database, worker_id: int, apprise_url: str) -> None:
    """Send the worker's notifications to ``apprise_url`` (a test receiver)."""
    await people.update_worker(db, worker_id, people.WorkerUpdate(apprise_urls=[apprise_url]),
                               actor="test")

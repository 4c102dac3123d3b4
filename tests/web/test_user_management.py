"""Issue 17, item 8: user management from the CLI, the admin page and the change-password page.

Each action must end that user's sessions (checked with real HTTP sessions
held open against the served app) and be audited. The CLI runs as
``python -m doorwatch`` in a subprocess; the pages are driven by Chromium.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import ServerSettings
from server.db.base import Database
from tests.requirements import need
from tests.web.conftest import Served
from tests.web.helpers import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NEW_PASSWORD = "a brand new password"


def _cli(settings: ServerSettings, tmp_path: Path, *args: str,
         stdin: str = "") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "{settings.database_url}"\n', encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "doorwatch", "user", *args, "--config",
                           str(config)], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False,
                          env={"PATH": "/usr/bin:/bin", "DOORWATCH_LANG": "en"})


@asynccontextmanager
async def _session(served: Served, username: str, password: str = PASSWORD,
                   source: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in API session (a phone, a desk) held open while the test acts."""
    async with served.client(source) as http:
        answer = await http.post("/api/login",
                                 json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        yield http


async def _alive(http: httpx.AsyncClient) -> bool:
    return (await http.get("/api/session")).status_code == 200


async def _can_log_in(served: Served, username: str, password: str) -> bool:
    async with served.client("127.0.0.9") as http:
        answer = await http.post("/api/login",
                                 json={"username": username, "password": password})
        return answer.status_code == 200


async def _audit(db: Database, action: str) -> list[dict[str, Any]]:
    return await db.fetch_all("SELECT actor, subject, detail FROM audit_log WHERE action = ? "
                              "ORDER BY id", (action,))


async def test_user_cli_lists_disables_enables_resets_and_deletes(
    served: Served, db: Database, settings: ServerSettings, tmp_path: Path
) -> None:
    async def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_cli, settings, tmp_path, *args, stdin=stdin)

    async with _session(served, "east") as phone, \
            _session(served, "east", source="127.0.0.5") as desk:
        disabled = await run("disable", "east")
        assert disabled.returncode == 0, disabled.stderr
        assert "Disabled user east; 2 sessions ended" in disabled.stdout
        assert not await _alive(phone)
        assert not await _alive(desk)
        assert not await _can_log_in(served, "east", PASSWORD)
    listed = await run("list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[1]: line for line in listed.stdout.splitlines()[1:]}
    assert lines["east"].endswith("disabled")
    assert lines["west"].endswith("active")

    assert (await run("enable", "east")).returncode == 0
    assert await _can_log_in(served, "east", PASSWORD)

    async with _session(served, "east") as phone:
        reset = await run("reset-password", "east", "--password-stdin", stdin=NEW_PASSWORD + "\n")
        assert reset.returncode == 0, reset.stderr
        assert "sessions ended" in reset.stdout
        assert not await _alive(phone)
    assert not await _can_log_in(served, "east", PASSWORD)
    assert await _can_log_in(served, "east", NEW_PASSWORD)
    short = await run("reset-password", "east", "--password-stdin", stdin="short\n")
    assert short.returncode != 0
    assert "[password]" in short.stderr

    async with _session(served, "west") as west:
        deleted = await run("delete", "west", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert not await _alive(west)
    assert not await _can_log_in(served, "west", PASSWORD)
    assert await db.fetch_one("SELECT id FROM users WHERE username = 'west'") is None

    last_admin = await run("delete", "admin", "--yes")
    assert last_admin.returncode != 0
    assert "last active admin" in last_admin.stderr
    unknown = await run("disable", "nobody")
    assert unknown.returncode != 0
    assert "nobody" in unknown.stderr

    for action in ("user.disable", "user.enable", "user.reset_password", "user.delete"):
        records = await _audit(db, action)
        assert len(records) == 1, action
        assert records[0]["actor"].startswith("cli:")
    assert "sessions_ended=2" in (await _audit(db, "user.disable"))[0]["detail"]


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium (never a downloaded one)."""
    need("chromium", CHROMIUM.exists(),  # noqa: ASYNC240 - one stat before the test
         "Chromium is not installed (Debian: apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    headless=True, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


async def _browser_login(page: Any, base: str, username: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    assert "/login" not in page.url, await page.content()


@pytest.mark.browser
@pytest.mark.slow
async def test_admin_page_and_change_password_page_end_sessions(
    served: Served, db: Database, chromium: Any
) -> None:
    base = served.url
    admin = await (await chromium.new_context(locale="en-US")).new_page()
    await _browser_login(admin, base, "admin", PASSWORD)
    await admin.goto(f"{base}/users")

    async with _session(served, "east") as phone:
        await admin.click("[data-testid=disable-east]")
        await admin.wait_for_selector("[data-testid=users-notice]")
        assert not await _alive(phone)
    assert not await _can_log_in(served, "east", PASSWORD)
    assert "Disabled" in await admin.inner_text("tr[data-user=east]")
    await admin.click("[data-testid=enable-east]")
    await admin.wait_for_selector("[data-testid=users-notice]")

    async with _session(served, "east") as phone:
        await admin.fill("[data-testid=reset-password-east]", NEW_PASSWORD)
        await admin.click("[data-testid=reset-east]")
        await admin.wait_for_selector("[data-testid=users-notice]")
        assert not await _alive(phone)
    assert await _can_log_in(served, "east", NEW_PASSWORD)

    # Deleting needs the "I am sure" box; the admin's own row refuses.
    async with _session(served, "west") as west:
        await admin.check("[data-testid=confirm-delete-west]")
        await admin.click("[data-testid=delete-west]")
        await admin.wait_for_selector("[data-testid=users-notice]")
        assert not await _alive(west)
    assert await admin.query_selector("tr[data-user=west]") is None
    await admin.check("[data-testid=confirm-delete-admin]")
    await admin.click("[data-testid=delete-admin]")
    assert "own account" in await admin.inner_text("[data-testid=users-error]")

    # The worker changes their own password: their other session ends, this one goes on.
    worker = await (await chromium.new_context(locale="zh-CN")).new_page()
    await _browser_login(worker, base, "east", NEW_PASSWORD)
    async with _session(served, "east", NEW_PASSWORD) as phone:
        await worker.click("[data-testid=account-password]")
        await worker.fill("input[name=current]", "not my password")
        await worker.fill("input[name=password]", "the final password")
        await worker.fill("input[name=repeat]", "the final password")
        await worker.click("[data-testid=change-password]")
        assert "当前密码不正确" in await worker.inner_text("[data-testid=password-error]")
        assert await _alive(phone)
        await worker.fill("input[name=current]", NEW_PASSWORD)
        await worker.fill("input[name=password]", "the final password")
        await worker.fill("input[name=repeat]", "the final password")
        await worker.click("[data-testid=change-password]")
        await worker.wait_for_selector("[data-testid=password-done]")
        assert not await _alive(phone)
    await worker.goto(f"{base}/incidents")
    assert worker.url.endswith("/incidents")  # still logged in here, on a fresh session
    assert not await _can_log_in(served, "east", NEW_PASSWORD)
    assert await _can_log_in(served, "east", "the final password")
    for action in ("user.disable", "user.enable", "user.reset_password", "user.delete",
                   "user.change_password"):
        assert len(await _audit(db, action)) == 1, action


async def test_user_management_over_the_api(served: Served, db: Database) -> None:
    east_id = (await db.fetch_one("SELECT id FROM users WHERE username = 'east'") or {})["id"]
    admin_id = (await db.fetch_one("SELECT id FROM users WHERE username = 'admin'") or {})["id"]
    async with _session(served, "admin") as admin, _session(served, "east") as phone:
        csrf = {"X-CSRF-Token": (await admin.get("/api/session")).json()["csrf_token"]}
        for forged in (admin.post(f"/api/users/{east_id}/disable"),
                       admin.delete(f"/api/users/{east_id}", headers={"X-CSRF-Token": "x"})):
            assert (await forged).status_code == 403
        assert await _alive(phone)
        assert (await admin.post(f"/api/users/{east_id}/disable", headers=csrf)).status_code \
            == 204
        assert not await _alive(phone)
        listed = {u["username"]: u["active"] for u in (await admin.get("/api/users")).json()}
        assert listed["east"] is False
        assert (await admin.post(f"/api/users/{east_id}/enable", headers=csrf)).status_code \
            == 204
        reset = await admin.post(f"/api/users/{east_id}/password", headers=csrf,
                                 json={"password": NEW_PASSWORD})
        assert reset.status_code == 204
        assert (await admin.delete(f"/api/users/{admin_id}", headers=csrf)).status_code == 409
        assert (await admin.delete("/api/users/99999", headers=csrf)).status_code == 404
        short = await admin.post(f"/api/users/{east_id}/password", headers=csrf,
                                 json={"password": "short"})
        assert short.status_code == 400
    async with _session(served, "east", NEW_PASSWORD) as east, \
            _session(served, "east", NEW_PASSWORD, source="127.0.0.6") as other:
        csrf = {"X-CSRF-Token": (await east.get("/api/session")).json()["csrf_token"]}
        wrong = await east.post("/api/session/password", headers=csrf,
                                json={"current": "nope", "password": "the final password"})
        assert wrong.status_code == 400
        changed = await east.post("/api/session/password", headers=csrf,
                                  json={"current": NEW_PASSWORD,
                                        "password": "the final password"})
        assert changed.status_code == 200, changed.text
        assert await _alive(east)
        assert not await _alive(other)
    async with _session(served, "admin") as admin:
        csrf = {"X-CSRF-Token": (await admin.get("/api/session")).json()["csrf_token"]}
        assert (await admin.delete(f"/api/users/{east_id}", headers=csrf)).status_code == 204
    assert not await _can_log_in(served, "east", "the final password")
    for action in ("user.disable", "user.enable", "user.reset_password", "user.delete",
                   "user.change_password"):
        assert len(await _audit(db, action)) == 1, action

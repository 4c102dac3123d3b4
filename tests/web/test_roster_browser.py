"""The duty roster end to end: set on the dashboard, followed by a real breach's escalation.

A supervisor adds a shift on the roster page (Debian's Chromium); a breach is
published through a private Mosquitto for a household whose own worker is off
shift; the alert reaches the on-duty worker's receiver, then (unacknowledged)
the backup's, then the supervisor's. The backup acknowledges with the one-tap
link over HTTP, and everyone else told is told so; resolving tells them all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from server.admin import add_household, register_device
from server.domain import people
from tests.conftest import Mosquitto, Receiver
from tests.waiting import wait_until_async
from tests.web.helpers import (
    Live,
    csrf_from,
    live_server,
    logged_in_page,
    notify_worker_at,
)
from tests.web.test_browser import ARTIFACTS, _publish_breach, browser

__all__ = ["browser"]  # fixture used below

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def fast_ladder(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto, escalating in seconds instead of minutes."""
    async with live_server(
            tmp_path, mosquitto,
            escalation={"backup_after_s": 1.0, "escalate_after_s": 2.5, "remind_every_s": 60,
                        "poll_interval_s": 0.2}) as running:
        yield running


def _titles(receiver: Receiver, path: str) -> list[str]:
    return [str(body["title"]) for body in receiver.to(path)]


async def test_roster_set_in_the_dashboard_drives_the_escalation(
    fast_ladder: Live, browser: object, mosquitto: Mosquitto,
    receiver: Receiver,
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = fast_ladder
    url = f"json://127.0.0.1:{receiver.port}"
    east = contents.grids["east"]
    duty = await people.add_worker(db, people.WorkerIn(
        name="值班甲", apprise_urls=[f"{url}/duty"], grid_id=east), actor="test")
    backup = await people.add_worker(db, people.WorkerIn(
        name="备班乙", apprise_urls=[f"{url}/backup"], grid_id=east), actor="test")
    chief = await people.add_worker(db, people.WorkerIn(
        name="督导丙", role=people.Role.SUPERVISOR, language="en",
        apprise_urls=[f"{url}/chief"]), actor="test")
    await people.update_grid(db, east, people.GridUpdate(supervisor_id=chief), actor="test")
    # The household's own worker is told at /own: they are not on the roster.
    await notify_worker_at(db, contents.workers["east"], f"{url}/own")

    page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 800})
    await page.click("[data-testid=nav-roster]")
    await expect(page.locator("h1")).to_have_text("值班表")
    form = page.locator("[data-testid=roster-add]")
    await form.locator("select[name=grid_id]").select_option(str(east))
    await form.locator("select[name=worker_id]").select_option(str(duty))
    await form.locator("select[name=backup_id]").select_option(str(backup))
    await form.locator("input[name=starts]").fill("00:00")
    await form.locator("input[name=ends]").fill("00:00")
    await page.click("[data-testid=roster-submit]")
    row = page.locator("#roster tbody tr[data-shift]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("值班甲")
    await expect(row).to_contain_text("备班乙")
    await expect(row.locator("[data-testid=on-duty]")).to_have_text("当班")
    await page.screenshot(path=str(ARTIFACTS / "roster.png"), full_page=True)

    household = await add_household(db, "孙七家", "黄河路 5 号 2-202",
                                     worker_id=contents.workers["east"])
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET grid_id = ? WHERE id = ?", (east, household))
    await register_device(db, "door-roster", household_id=household)
    password = mosquitto.add_device("door-roster")
    await asyncio.to_thread(_publish_breach, mosquitto, "door-roster", password, 1)

    # On-duty worker first, then the backup, then the supervisor; nobody at /own.
    def arrived(path: str, count: int = 1) -> bool:
        return len(receiver.to(path)) >= count

    await wait_until_async(lambda: arrived("/duty"), "the on-duty worker's alert", 30)
    await wait_until_async(lambda: arrived("/backup"), "the backup's alert", 30)
    await wait_until_async(lambda: arrived("/chief"), "the supervisor's escalation", 30)
    assert "违规外出" in _titles(receiver, "/duty")[0]
    assert "转交备班" in _titles(receiver, "/backup")[0]
    assert _titles(receiver, "/chief")[0].startswith("[Escalated]")
    assert "值班甲" in _titles(receiver, "/chief")[0]  # names who did not respond

    # The backup acknowledges with the link in their message (no log-in).
    link = re.search(r"(https?://\S+/a/\S+)", str(receiver.to("/backup")[0]["message"]))
    assert link, receiver.to("/backup")[0]
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(urlparse(link.group(1)).path)
    assert response.status_code == 200
    assert 'data-state="acknowledged"' in response.text
    await wait_until_async(lambda: arrived("/duty", 2) and arrived("/chief", 2),
                           "the acknowledgement told to the on-duty worker and the supervisor",
                           30)
    assert "已确认" in _titles(receiver, "/duty")[1]
    assert "备班乙" in _titles(receiver, "/duty")[1]
    assert _titles(receiver, "/chief")[1].startswith("[Acknowledged]")
    assert len(receiver.to("/backup")) == 1  # not told what they did themselves

    # The supervisor resolves it on the dashboard: all three are told the outcome.
    incident = await db.fetch_one("SELECT id FROM incidents WHERE household_id = ?",
                                  (household,))
    assert incident is not None
    await page.goto(f"{base}/incidents/{incident['id']}")
    responder = page.locator("[data-testid=responder]")
    await expect(responder).to_contain_text("值班甲")
    await expect(responder).to_contain_text("备班乙")
    csrf = csrf_from(await page.content())
    answer = await page.request.post(f"{base}/incidents/{incident['id']}/resolve", form={
        "csrf_token": csrf, "outcome": "false_alarm", "note": "快递员"})
    assert answer.ok
    await wait_until_async(lambda: arrived("/duty", 3) and arrived("/backup", 2)
                           and arrived("/chief", 3), "the outcome told to all three", 30)
    assert "已处理" in _titles(receiver, "/backup")[1]
    assert "快递员" in str(receiver.to("/backup")[1]["message"])
    assert receiver.to("/own") == []

    # Shifts can be removed on the page (audited).
    await page.goto(f"{base}/roster")
    await page.click("#roster tbody tr[data-shift] button")
    await expect(page.locator("#roster tbody tr[data-shift]")).to_have_count(0)
    actions = await db.fetch_all("SELECT actor, action FROM audit_log "
                                 "WHERE action LIKE 'roster.%' ORDER BY id")
    assert [(a["actor"], a["action"]) for a in actions] == [("super", "roster.add"),
                                                            ("super", "roster.remove")]

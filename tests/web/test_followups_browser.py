"""Follow-ups per member on a worker's phone (issue 19, item 1), in a real browser.

The whole server runs on a private Mosquitto (``serve``); a grid worker opens
today's list on a phone-sized Chromium, visits a household, records a
temperature and symptoms per member — one a fever — and the health station's
worker receives the fever alert through real Apprise (json:// to a local
receiver). The reminder job then tells the worker, through Apprise too, which
household is still not visited; the CSV export has one line per member.
Roles and grid scope are checked on the same server.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ground.timeutil import now_ts
from server.admin import add_household
from server.domain import people
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count
from tests.web.helpers import Live, live_server, logged_in_page, notify_worker_at
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto, its reminder job started by the test only."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None}) as running:
        yield running


async def test_worker_records_per_member_follow_ups_and_a_fever_reaches_the_health_station(
    live: Live, browser: object, receiver: Receiver,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    server, contents, base, db = live
    health = await people.add_worker(db, people.WorkerIn(
        name="Dr Liu (health station)", language="en", apprise_urls=[receiver.apprise_url]),
        actor="test")
    server.settings.followups = server.settings.followups.model_copy(
        update={"health_worker_id": health})
    await notify_worker_at(db, contents.workers["east"], receiver.apprise_url)
    wang = await add_household(db, "王家", "和平街 3 号 1-201", worker_id=contents.workers["east"])
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET grid_id = ?, members = ? WHERE id = ?",
                         (contents.grids["east"], '["王大", "王二"]', wang))

    page = await logged_in_page(browser, base, "east", viewport={"width": 390, "height": 844},
                                is_mobile=True, has_touch=True, accept_downloads=True)
    await page.click("a[href='/followups']")
    missing = page.locator("#not-visited li")
    await expect(missing).to_have_count(2)  # 王家 and east family; west is another grid
    await expect(page.locator("#not-visited")).not_to_contain_text("west family")
    await expect(page.locator("h2").first).to_have_text("今天尚未随访（2 户）")
    await page.screenshot(path=str(ARTIFACTS / "followups-today-phone.png"), full_page=True)

    await page.locator(f"#not-visited li[data-id='{wang}'] a.button").click()
    await expect(page.locator("fieldset.member legend")).to_have_text(["王大", "王二"])
    await page.fill("[data-testid=temp-0]", "36.6")
    await page.fill("[data-testid=temp-1]", "38.2")
    await page.fill("[data-testid=symptom-1]", "咳嗽，乏力")
    await page.click("#followup-form button")
    await page.wait_for_url(f"**/households/{wang}")
    history = page.locator("#followup-history tr").first
    await expect(history).to_contain_text("王大: 36.6 °C")
    await expect(history).to_contain_text("王二: 38.2 °C · 发热")
    await expect(history).to_contain_text("王二: 咳嗽，乏力")
    await page.screenshot(path=str(ARTIFACTS / "followup-fever-phone.png"), full_page=True)

    # The health station hears of it through Apprise, in its own language.
    assert await asyncio.to_thread(receiver.wait_for, 1)
    alert = receiver.received[0]
    assert alert["title"] == "[Fever] 王家: 王二 38.2 °C"
    assert "和平街 3 号 1-201" in str(alert["message"])
    incident = await db.fetch_one("SELECT id, kind, state FROM incidents WHERE kind = 'fever'")
    assert incident is not None
    assert incident["state"] == "open"
    await history.locator(f"a[href='/incidents/{incident['id']}']").click()
    await expect(page.locator("h1")).to_contain_text("随访发热")

    await page.goto(f"{base}/followups")
    await expect(page.locator("#visited li")).to_have_count(1)
    await expect(page.locator("#visited li")).to_contain_text("发热")
    await expect(missing).to_have_count(1)
    await page.click("[data-testid=lang-en]")
    await expect(page.locator("h2").first).to_have_text("Not visited today (1)")

    # The reminder: the worker hears of the household still not visited. Its hour has come
    # (the row the job keeps says so), whatever the time of this test.
    server.settings.followups = server.settings.followups.model_copy(
        update={"remind_at": "16:00"})
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO scheduled_jobs (job, next_run_at) VALUES (?, ?)",
                         ("followup-reminder", now_ts()))
    assert server.followup_reminder is not None
    report = await server.followup_reminder.run_if_due()
    assert report is not None
    assert sorted(report.workers) == sorted(contents.workers.values())
    assert report.notifications == 1  # the west worker has no Apprise URL
    assert await asyncio.to_thread(receiver.wait_for, 2)
    reminder = receiver.received[1]
    assert reminder["title"] == "【随访提醒】今天还有 1 户未随访"
    assert "east family" in str(reminder["message"])
    assert "王家" not in str(reminder["message"])

    async with page.expect_download() as download_info:
        await page.click("#followup-export button")
    download = await download_info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    lines = [r for r in csv.DictReader(io.StringIO(text))]
    assert [(r["member"], r["temperature_c"], r["fever"], r["symptoms"]) for r in lines] == [
        ("王大", "36.6", "no", ""), ("王二", "38.2", "yes", "咳嗽，乏力")]
    assert lines[0]["household"] == "王家"
    assert lines[0]["grid"] == "east-grid"
    assert lines[1]["fever_incident_id"] == str(incident["id"])
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'followup.record' "
                           "AND actor = 'east'") == 1

    # Scope and roles: another grid's worker may not record here; an installer sees nothing.
    page2 = await logged_in_page(browser, base, "west")
    response = await page2.goto(f"{base}/households/{wang}")
    assert response is not None
    assert response.status == 404
    await page2.goto(f"{base}/followups")
    await expect(page2.locator("#not-visited")).not_to_contain_text("王家")
    csrf = await page2.evaluate("document.querySelector('input[name=csrf_token]').value")
    posted = await page2.request.post(f"{base}/households/{wang}/followups", form={
        "csrf_token": csrf, "member": "王大", "temp": "39", "symptom": ""})
    assert posted.status == 404
    page3 = await logged_in_page(browser, base, "fitter")
    response = await page3.goto(f"{base}/followups")
    assert response is not None
    assert response.status == 403
    assert await count(db, "SELECT COUNT(*) FROM followups") == 1
    for ctx in (page.context, page2.context, page3.context):
        await ctx.close()

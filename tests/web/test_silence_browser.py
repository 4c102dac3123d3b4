"""Silencing a household on its page (Chromium): audited, shown while it applies, lifted.

The server is the real one on Mosquitto; while the household is silenced a
breach published through the broker is still recorded and still notified
(a silence covers device alerts unless it says "breaches too").
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.domain.incident_opening import IncidentOutcome
from server.domain.incidents import resolve_incident
from tests.conftest import Mosquitto, Receiver
from tests.web.helpers import Live, logged_in_page, notify_worker_at
from tests.web.test_browser import ARTIFACTS, _publish_breach, browser, live

__all__ = ["browser", "live"]  # fixtures used below

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


async def test_supervisor_silences_a_household_and_lifts_it(
    live: Live, browser: object, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    from playwright.async_api import expect

    server, contents, base, db = live
    household = contents.households["east"]
    await notify_worker_at(db, contents.workers["east"], receiver.apprise_url)

    page = await logged_in_page(browser, base, "super",
                                viewport={"width": 1280, "height": 900}, locale="zh-CN")
    await page.goto(f"{base}/households/{household}")
    await expect(page.locator("[data-testid=silence]")).to_have_count(0)
    await expect(page.locator("#silences")).to_contain_text("从未静默")
    zone = ZoneInfo(server.settings.notify.timezone)
    until = (datetime.now(zone) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    form = page.locator("[data-testid=silence-form]")
    await form.locator("input[name=reason]").fill("住院三天")
    await form.locator("input[name=until]").fill(until)
    await page.click("[data-testid=silence-submit]")
    banner = page.locator("[data-testid=silence]")
    await expect(banner).to_have_count(1)
    await expect(banner.locator("[data-testid=silence-reason]")).to_have_text("住院三天")
    await expect(banner).to_contain_text("设备离线/遮挡告警不通知")
    await expect(banner).to_contain_text("super")
    await page.screenshot(path=str(ARTIFACTS / "household-silenced.png"), full_page=True)

    # A grid worker sees the silence but cannot lift it or set one.
    worker_page = await logged_in_page(browser, base, "east")
    await worker_page.goto(f"{base}/households/{household}")
    await expect(worker_page.locator("[data-testid=silence]")).to_have_count(1)
    await expect(worker_page.locator("[data-testid=silence-lift]")).to_have_count(0)
    await expect(worker_page.locator("[data-testid=silence-form]")).to_have_count(0)

    # A breach while silenced (device alerts only) is recorded and notified (the seeded
    # incident resolved first, or the breach would fold into it).
    await resolve_incident(db, contents.incidents["east"], actor="test",
                           outcome=IncidentOutcome.FALSE_ALARM, note="seed")
    password = mosquitto.add_device("door-east")
    await asyncio.to_thread(_publish_breach, mosquitto, "door-east", password, 2)
    assert await asyncio.to_thread(receiver.wait_for, 1, 30)
    assert "违规外出" in str(receiver.received[0]["title"])

    await page.click("[data-testid=silence-lift]")
    await expect(page.locator("[data-testid=silence]")).to_have_count(0)
    await expect(page.locator("#silences")).to_contain_text("已由 super 解除")
    audit = await db.fetch_all("SELECT actor, action, detail FROM audit_log "
                               "WHERE action LIKE 'household.%silence' ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit] == [("super", "household.silence"),
                                                          ("super", "household.unsilence")]
    assert "住院三天" in audit[0]["detail"]

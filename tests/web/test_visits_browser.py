"""Expected visits on a worker's phone (issue 19, item 3), in a real browser on the real server.

The worker registers a visit on the household page; a device publishes a
handover and an entry through a private Mosquitto, which the server logs
against the visit as planned (no incident) and the page shows; the visitor
stays past the limit, and the overstay incident carrying the registration
reaches the worker through real Apprise. On another household an unregistered
person comes in and somebody leaves 17 s later: a breach, whose notification
and page say that a visitor came in 17 s before and what came in and went out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from server.admin import add_household, register_device
from server.clock import ManualClock
from server.jobs.visit_watch import VisitWatch
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count
from tests.waiting import wait_until_async
from tests.web.helpers import Live, live_server, logged_in_page, notify_worker_at
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None}) as running:
        yield running


def _publish(broker: Mosquitto, device_id: str, password: str,
             events: list[tuple[EventKind, datetime]], first_seq: int = 1) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    broker.connect_device(client)
    client.loop_start()
    try:
        for n, (kind, at) in enumerate(events):
            event = Event(device_id=device_id, seq=first_seq + n, time=at, kind=kind, armed=True)
            client.publish(device_topic(device_id, Channel.EVENT), encode(event),
                           qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_registered_visit_is_planned_and_an_unregistered_one_is_explained(
    live: Live, browser: object, receiver: Receiver,  # noqa: F811
    mosquitto: Mosquitto,
) -> None:
    from playwright.async_api import expect

    server, contents, base, db = live
    await notify_worker_at(db, contents.workers["east"], receiver.apprise_url)
    east = contents.households["east"]
    password = mosquitto.add_device("door-east")
    incidents_before = await count(db, "SELECT COUNT(*) FROM incidents")

    page = await logged_in_page(browser, base, "east", viewport={"width": 390, "height": 844},
                                is_mobile=True, has_touch=True)
    await page.goto(f"{base}/households/{east}")
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    form = page.locator("#visit-form")
    await form.locator("input[name=starts_at]").fill(
        (local - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    await form.locator("input[name=ends_at]").fill(
        (local + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    await form.locator("input[name=visitor]").fill("刘护士")
    await form.locator("input[name=organisation]").fill("社区卫生服务站")
    await form.locator("input[name=purpose]").fill("核酸采样")
    await form.locator("input[name=stay_limit_min]").fill("15")
    await form.locator("button").click()
    row = page.locator("#visit-list tbody tr").first
    await expect(row).to_contain_text("刘护士")
    await expect(row).to_contain_text("待来访")

    now = utc_now()
    await asyncio.to_thread(_publish, mosquitto, "door-east", password,
                            [(EventKind.HANDOVER, now), (EventKind.ENTRY, now)],
                            first_seq=10)  # the seed stored seq 1 of door-east

    async def both_logged() -> bool:
        return await count(db, "SELECT COUNT(*) FROM visit_events") == 2

    await wait_until_async(both_logged, "the handover and the entry logged to the visit", 20)
    await page.reload()
    await expect(row).to_contain_text("访客在内")
    await expect(row.locator("[data-testid=visit-counts]")).to_have_text(
        "进 1 / 出 0 / 门口交接 1")
    assert await count(db, "SELECT COUNT(*) FROM incidents") == incidents_before
    await page.screenshot(path=str(ARTIFACTS / "visit-inside-phone.png"), full_page=True)

    # Past the stay limit: the watch job (as it runs in the server) opens the overstay.
    watch = VisitWatch(db, server.settings, ManualClock(now + timedelta(minutes=16)))
    opened = await watch.check()
    assert len(opened) == 1
    assert await asyncio.to_thread(receiver.wait_for, 1)
    assert str(receiver.received[0]["title"]).startswith(
        "【访客逾时】east family：刘护士 (社区卫生服务站): 核酸采样; inside since ")
    assert "limit 15 min, 1 in / 0 out" in str(receiver.received[0]["title"])
    await page.reload()
    await row.locator(f"a[href='/incidents/{opened[0]}']").click()
    await expect(page.locator("h1")).to_contain_text("登记访客逾时未离开")
    await expect(page.locator("[data-testid=detail]")).to_contain_text("刘护士 (社区卫生服务站)")

    # Another household: an unregistered person comes in, somebody leaves 17 s later.
    north = await add_household(db, "北家", "和平街 9 号", worker_id=contents.workers["east"])
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET grid_id = ? WHERE id = ?",
                         (contents.grids["east"], north))
    await register_device(db, "door-north", household_id=north)
    north_password = mosquitto.add_device("door-north")
    await asyncio.to_thread(_publish, mosquitto, "door-north", north_password,
                            [(EventKind.ENTRY, now),
                             (EventKind.EXIT, now + timedelta(seconds=17))])
    assert await asyncio.to_thread(receiver.wait_for, 3, 30)  # the visitor and the breach
    # Two incidents' alerts: the sender delivers them independently, in either order.
    later = receiver.received[1:3]
    assert sorted("违规外出" in str(n["title"]) for n in later) == [False, True], later
    assert any("有人进入：北家" in str(n["title"]) for n in later), later
    breach = next(n for n in later if "违规外出" in str(n["title"]))
    assert "此次外出前 17 秒有未登记的人进入" in str(breach["message"])
    assert "共进入 1 人次、外出 1 人次（含此次）" in str(breach["message"])
    incident = await db.fetch_one("SELECT id FROM incidents WHERE kind = 'breach' "
                                  "AND household_id = ?", (north,))
    assert incident is not None
    await page.goto(f"{base}/incidents/{incident['id']}")
    note = page.locator("#visitor-context")
    await expect(note).to_contain_text("此次外出前 17 秒有未登记的人进入")
    await page.click("[data-testid=lang-en]")
    await expect(note).to_contain_text("an unregistered person came in 17 s before this exit")
    await page.screenshot(path=str(ARTIFACTS / "breach-after-visitor-phone.png"), full_page=True)

    # Another grid's worker cannot register a visit here; an installer sees no household.
    page2 = await logged_in_page(browser, base, "west")
    csrf = await page2.evaluate("document.querySelector('input[name=csrf_token]').value")
    refused = await page2.request.post(f"{base}/households/{east}/visits", form={
        "csrf_token": csrf, "starts_at": "2030-01-01T08:00", "ends_at": "2030-01-01T09:00",
        "visitor": "x", "purpose": "y"})
    assert refused.status == 404
    assert await count(db, "SELECT COUNT(*) FROM visits") == 1
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'visit.register' "
                           "AND actor = 'east'") == 1
    for ctx in (page.context, page2.context):
        await ctx.close()


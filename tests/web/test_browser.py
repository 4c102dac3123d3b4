"""The dashboard in a real browser on a real server: a breach through Mosquitto appears live.

Chromium (Debian's, driven by Playwright) talks to the dashboard served by
``server.service.serve`` itself; the breach is a valid Event published with
paho through a private Mosquitto and processed by the server's consumer and
rules, exactly as a door agent's would be.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from server.admin import add_household, register_device
from tests.conftest import Mosquitto
from tests.paths import REPO_ROOT
from tests.requirements import need
from tests.web.helpers import Live, live_server, logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server (consumer, rules, notifier, dashboard on a free port) on Mosquitto."""
    async with live_server(tmp_path, mosquitto) as running:
        yield running


def _publish_breach(broker: Mosquitto, device_id: str, password: str, seq: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    broker.connect_device(client)
    client.loop_start()
    try:
        event = Event(device_id=device_id, seq=seq, time=utc_now(), kind=EventKind.EXIT,
                      armed=True, detail="一人走出门口")
        client.publish(device_topic(device_id, Channel.EVENT), encode(event),
                       qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Headless Debian Chromium (never a downloaded one)."""
    need("chromium", CHROMIUM.exists(),  # noqa: ASYNC240 - one stat before the test
         "Chromium is not installed (Debian: apt-get install chromium)")
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    headless=True, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


async def test_supervisor_sees_a_breach_live_and_handles_it(
    live: Live, browser: object, mosquitto: Mosquitto
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    household = await add_household(db, "李四家", "和平街 12 号 2-301",
                                     worker_id=contents.workers["east"])
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET grid_id = ? WHERE id = ?",
                         (contents.grids["east"], household))
    await register_device(db, "door-north", household_id=household)
    password = mosquitto.add_device("door-north")

    page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 800},
                                accept_downloads=True)
    assert page.url.endswith("/incidents")
    await expect(page.locator("#incidents tbody tr")).to_have_count(2)

    await asyncio.to_thread(_publish_breach, mosquitto, "door-north", password, 1)
    fresh = page.locator("#incidents tbody tr.fresh")
    await expect(fresh).to_have_count(1, timeout=20_000)  # arrived without a reload
    await expect(fresh).to_contain_text("李四家")
    await expect(fresh).to_contain_text("违规外出")
    await expect(page.locator("#incidents tbody tr")).to_have_count(3)
    await page.screenshot(path=str(ARTIFACTS / "incidents-live.png"), full_page=True)

    await fresh.locator("a").first.click()
    await page.wait_for_load_state()
    await expect(page.locator("[data-testid=state]")).to_have_text("待确认")
    await expect(page.locator(".timeline")).to_contain_text("一人走出门口")
    await page.click("[data-testid=ack]")
    await expect(page.locator("[data-testid=state]")).to_have_text("已确认")
    await page.select_option("[data-testid=outcome-select]", "confirmed_breach")
    await page.fill("[data-testid=note]", "已电话联系，本人已返回")
    await page.click("[data-testid=resolve]")
    await expect(page.locator("[data-testid=state]")).to_have_text("已处理")
    await expect(page.locator("[data-testid=outcome]")).to_have_text("确认违规外出")
    await page.screenshot(path=str(ARTIFACTS / "incident-detail.png"), full_page=True)
    incident_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])

    await page.goto(f"{base}/incidents")
    async with page.expect_download() as download_info:
        await page.click("[data-testid=export-csv]")
    download = await download_info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {contents.incidents["east"], contents.incidents["west"], incident_id}
    row = rows[incident_id]
    assert (row["household"], row["kind"], row["state"], row["outcome"]) == (
        "李四家", "违规外出", "已处理", "确认违规外出")
    assert row["acknowledged_by"] == "super"
    assert row["note"] == "已电话联系，本人已返回"
    assert row["device_id"] == "door-north"
    assert row["grid"] == "east-grid"

    for name in ("households", "devices", "charts", "audit"):
        await page.goto(f"{base}/{name}")
        await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    await expect(page.locator("#audit")).to_contain_text("incident:" + str(incident_id))
    await page.context.close()


async def test_worker_on_a_phone_sees_only_their_grid(
    live: Live, browser: object
) -> None:
    from playwright.async_api import expect

    _, contents, base, _ = live
    page = await logged_in_page(browser, base, "west", viewport={"width": 390, "height": 844},
                                is_mobile=True, has_touch=True)
    rows = page.locator("#incidents tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("west family")
    await page.screenshot(path=str(ARTIFACTS / "worker-phone-incidents.png"), full_page=True)
    assert await page.locator("text=east family").count() == 0
    await page.goto(f"{base}/households")
    await expect(page.locator("#households tbody tr")).to_have_count(1)
    await page.screenshot(path=str(ARTIFACTS / "worker-phone-households.png"), full_page=True)
    response = await page.goto(f"{base}/incidents/{contents.incidents['east']}")
    assert response is not None
    assert response.status == 404
    response = await page.goto(f"{base}/devices")
    assert response is not None
    assert response.status == 403
    # Switch to English on the phone; the choice sticks to the profile.
    await page.goto(f"{base}/incidents")
    await page.click("[data-testid=lang-en]")
    await expect(page.locator("h1")).to_have_text("Incidents")
    await page.context.close()

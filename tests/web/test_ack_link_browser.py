"""A grid worker acknowledges a breach from the notification's link on a phone (Chromium).

The breach goes the real way (MQTT -> the server's consumer and rules -> Apprise
``json://`` to a local receiver standing in for the phone); the link in the
delivered text is opened in Debian's Chromium on a phone viewport, without any
log-in.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlparse

import pytest

from server.admin import add_household, add_worker, register_device
from tests.conftest import Mosquitto, Receiver
from tests.web.helpers import Live
from tests.web.test_browser import ARTIFACTS, _publish_breach, browser, live

__all__ = ["browser", "live"]  # fixtures used below

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


async def test_worker_acknowledges_from_the_link_on_a_phone(
    live: Live, browser: object, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    server, _, _, db = live
    worker = await add_worker(db, "赵网格", apprise_urls=[receiver.apprise_url],
                              language="zh_CN")
    household = await add_household(db, "王五家", "长江路 3 号 1-101", worker_id=worker)
    await register_device(db, "door-phone", household_id=household)
    password = mosquitto.add_device("door-phone")
    await asyncio.to_thread(_publish_breach, mosquitto, "door-phone", password, 1)
    assert await asyncio.to_thread(receiver.wait_for, 1, 30)
    body = str(receiver.received[0]["message"])  # Apprise json:// payload
    match = re.search(r"(https?://\S+/a/\S+)", body)
    assert match, body
    link = server.web.url + urlparse(match.group(1)).path

    context = await browser.new_context(viewport={"width": 390, "height": 844},
                                        is_mobile=True, has_touch=True, locale="zh-CN")
    page = await context.new_page()
    await page.goto(link)
    card = page.locator("[data-testid=ack-page]")
    await expect(card).to_have_attribute("data-state", "ask")
    await expect(card).to_contain_text("王五家")
    await expect(card).to_contain_text("违规外出")
    button = page.locator("[data-testid=ack-button]")
    box = await button.bounding_box()
    assert box is not None
    assert box["width"] >= 300  # a thumb-sized button across the phone's width
    assert box["height"] >= 48
    await page.screenshot(path=str(ARTIFACTS / "ack-link-phone.png"), full_page=True)
    await button.tap()
    await expect(card).to_have_attribute("data-state", "acknowledged")
    await expect(page.locator("[data-testid=ack-message]")).to_contain_text("已确认")
    await page.screenshot(path=str(ARTIFACTS / "ack-link-done.png"), full_page=True)
    row = await db.fetch_one("SELECT state, acknowledged_by FROM incidents "
                             "WHERE household_id = ?", (household,))
    assert row is not None
    assert row["state"] == "acknowledged"
    assert f"赵网格 (worker:{worker})" == row["acknowledged_by"]
    # The same link again (a second tap, a forwarded message): refused, clearly.
    response = await page.goto(link)
    assert response is not None
    assert response.status == 410
    await expect(page.locator("[data-testid=ack-message]")).to_contain_text("已经使用过")
    response = await page.goto(link[:-4] + "abcd")
    assert response is not None
    assert response.status == 400
    await expect(page.locator("[data-testid=ack-message]")).to_contain_text("无效")
    await context.close()

"""Monitoring coverage in the browser (issue 19 item 4), fed through a private Mosquitto.

A device (paho with the device's own credentials) announces itself online and
sends heartbeats with camera frames, then a ``camera_covered`` tamper event; the
server's device watch records the armed time and the camera's blind spell. The
supervisor's grid view and the household page show the verified share below
100 % and the spell, in Chinese and in English; a grid worker sees only their grid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker.messages import Event, EventKind, Heartbeat, TamperKind, encode, utc_now
from broker.topics import Channel, device_topic
from tests.conftest import Mosquitto
from tests.e2e.helpers import count
from tests.e2e.test_storm import connect
from tests.waiting import wait_until_async
from tests.web.helpers import Live, live_server, logged_in_page
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto, its device watch ticking quickly."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None},
                           devices={"poll_interval_s": 0.2}) as running:
        yield running


def _publish(client: mqtt.Client, device: str, channel: Channel, payload: bytes) -> None:
    client.publish(device_topic(device, channel), payload, qos=1).wait_for_publish(10)


async def test_grid_view_and_household_page_show_blind_spells(
    live: Live, browser: object, mosquitto: Mosquitto,  # noqa: F811
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    east = contents.households["east"]
    password = mosquitto.add_device("door-east")
    client = await asyncio.to_thread(connect, mosquitto, "door-east", password)
    try:
        beat = Heartbeat(device_id="door-east", time=utc_now(), uptime_s=3, armed=True,
                         last_seq=1, outbox_depth=0, camera_fps=12.5, firmware_version="t")
        await asyncio.to_thread(_publish, client, "door-east", Channel.HEARTBEAT, encode(beat))

        async def armed_and_verified() -> bool:
            return await count(db, "SELECT COUNT(*) FROM coverage_spells WHERE household_id = ? "
                                   "AND part = 'armed' AND ended_at IS NULL", (east,)) == 1 \
                and await count(db, "SELECT COUNT(*) FROM coverage_spells WHERE household_id = ? "
                                    "AND part != 'armed' AND ended_at IS NULL", (east,)) == 0

        await wait_until_async(armed_and_verified, "an open armed spell, nothing else", 20)
        # Not a wait: a second of verified armed time, before the camera is covered.
        await asyncio.sleep(1.0)
        tamper = Event(device_id="door-east", seq=2, time=utc_now(), kind=EventKind.TAMPER,
                       armed=True, tamper=TamperKind.CAMERA_COVERED, detail="lens covered")
        await asyncio.to_thread(_publish, client, "door-east", Channel.EVENT, encode(tamper))

        async def camera_blind() -> bool:
            return await count(db, "SELECT COUNT(*) FROM coverage_spells WHERE household_id = ? "
                                   "AND part = 'camera' AND ended_at IS NULL", (east,)) == 1

        await wait_until_async(camera_blind, "an open camera spell", 20)
    finally:
        client.loop_stop()
        client.disconnect()

    page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 900})
    await page.click("[data-testid=nav-coverage]")
    await page.wait_for_url("**/coverage")
    grid = page.locator("[data-testid=coverage-grid][data-grid=east-grid]")
    row = grid.locator(f"tr[data-household='{east}']")
    # (Before the device first spoke, its link and camera were blind too: closed spells.)
    covered = row.locator("[data-testid=blind-spells] li[data-part=camera]",
                          has_text="camera_covered")
    await expect(covered).to_contain_text("摄像头")
    await expect(covered).to_contain_text("至今")
    share = await row.locator("[data-testid=coverage-share]").inner_text()
    assert share.endswith("%")
    assert 0.0 < float(share.rstrip("%")) < 100.0
    await page.screenshot(path=str(ARTIFACTS / "coverage.png"), full_page=True)

    await row.locator("a").first.click()
    await page.wait_for_url(f"**/households/{east}?day=*")
    section = page.locator("#coverage")
    await expect(section.locator("li[data-part=camera]", has_text="camera_covered")
                 ).to_contain_text("摄像头")
    await page.click("[data-testid=lang-en]")
    await expect(page.locator("#coverage li[data-part=camera]", has_text="camera_covered")
                 ).to_contain_text("ongoing")
    await expect(page.locator("#coverage li[data-part=camera]").first).to_contain_text("Camera")
    await expect(page.locator("#coverage")).to_contain_text("verified")

    # A grid worker of the other grid does not see this household.
    page2 = await logged_in_page(browser, base, "west", viewport={"width": 390, "height": 844},
                                 is_mobile=True)
    await page2.goto(f"{base}/coverage")
    await expect(page2.locator("[data-testid=coverage-grid]")).to_have_count(1)
    await expect(page2.locator(f"tr[data-household='{east}']")).to_have_count(0)

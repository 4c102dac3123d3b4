"""Presence check-in end to end (issue 19 item 2): a grid worker asks on the household page,
the server publishes the command through a private Mosquitto, the real agent (synthetic
camera, real analyser, chime on gpiozero's mock pin) chimes and watches the doorway.

A person who comes to the sill and goes back in is "present"; with nobody at the door (the
first check-in's door closing, a passer-by in the corridor) the check-in is missed, a
missed-check-in incident opens and the worker hears of it through real Apprise (a local
HTTP receiver).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.service import running_agent
from agent.wiring import build_camera, synthetic_source
from sensors.source_synthetic import DoorOpen, Walk
from server.admin import register_device
from server.domain import households
from tests.agent.helpers import device_config, make_agent
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count
from tests.waiting import poll_until_async
from tests.web.helpers import Live, live_server, logged_in_page, notify_worker_at
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto; check-ins with a short window, looked at often."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None},
                           reports={"daily_at": None},
                           checkins={"window_s": 12, "answer_grace_s": 3,
                                     "poll_interval_s": 0.2}) as running:
        yield running


async def test_worker_asks_for_a_check_in_present_then_missed(
    tmp_path: Path, live: Live, browser: object,  # noqa: F811
    mosquitto: Mosquitto, receiver: Receiver,
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    await notify_worker_at(db, contents.workers["east"], receiver.apprise_url)
    home = await households.add_household(db, households.HouseholdIn(
        name="签到家", address="east road 9", grid_id=contents.grids["east"],
        worker_id=contents.workers["east"], armed=True), actor="test")
    await register_device(db, "door-ci", household_id=home)
    password = mosquitto.add_device("door-ci")
    config = device_config(tmp_path, mosquitto, "door-ci", password,
                           camera={"backend": "synthetic"},
                           chime={"fitted": True, "gpio_pin": 22, "beeps": 2, "beep_s": 0.05})
    synthetic = synthetic_source(config)
    agent = make_agent(config, camera=build_camera(config, synthetic))

    async with running_agent(agent):
        await asyncio.sleep(2.0)  # the synthetic camera's background model settles
        page = await logged_in_page(browser, base, "east", viewport={"width": 390, "height": 844},
                                    is_mobile=True)
        await page.goto(f"{base}/households/{home}")
        await page.click("[data-testid=checkin-request]")
        await page.wait_for_url(f"**/households/{home}#checkins")
        await expect(page.locator("#checkin-list tbody tr").first).to_contain_text("等待中")

        async def chimed() -> bool:
            await asyncio.sleep(0)
            return agent.chime is not None and agent.chime.sounded == 1

        assert await poll_until_async(chimed, 20)
        synthetic.schedule(DoorOpen(0.0, 5.6))
        synthetic.schedule(Walk("handover", 0.0, duration=4.0, side=1), delay=0.8)

        async def settled(n: int) -> bool:
            return await count(db, "SELECT COUNT(*) FROM checkins WHERE outcome IS NOT NULL") == n

        assert await poll_until_async(lambda: settled(1), 30)
        await page.reload()
        await expect(page.locator("#checkin-list tbody tr").first).to_contain_text("有人在家")

        # Nobody comes this time: missed, an incident, the worker is told. Asked as soon as
        # the first is answered, so its door may still swing shut and its resident walk
        # back inside after this chime; and somebody walks along the corridor. None of it
        # is somebody coming to the door (agent/checkin.py).
        await page.click("[data-testid=checkin-request]")

        async def chimed_again() -> bool:
            await asyncio.sleep(0)
            return agent.chime is not None and agent.chime.sounded == 2

        assert await poll_until_async(chimed_again, 20)
        synthetic.schedule(Walk("pass", 0.0, duration=3.0), delay=0.5)
        assert await poll_until_async(lambda: settled(2), 40)
        await page.reload()
        first = page.locator("#checkin-list tbody tr").first
        await expect(first).to_contain_text("无人到门口")
        await page.screenshot(path=str(ARTIFACTS / "checkin.png"), full_page=True)
        await page.click("[data-testid=lang-en]")
        await expect(page.locator("#checkin-list tbody tr").first).to_contain_text(
            "Nobody came")

    assert await count(db, "SELECT COUNT(*) FROM incidents WHERE kind = 'missed_checkin' "
                           "AND household_id = ?", (home,)) == 1
    assert await asyncio.to_thread(receiver.wait_for, 1)
    titles = [str(n["title"]) for n in receiver.received]
    assert "【签到未通过】签到家：无人到门口" in titles
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'household.checkin' "
                           "AND actor = 'east'") == 2

"""Release from the dashboard (issue 19, item 7), with a real agent on a private Mosquitto.

A supervisor ends a household's quarantine on its page: the release record
(who, when, outcome) appears, the real agent (in-process, mock door) receives
the retained ``disarm`` and acknowledges it, the grid worker is told through
real Apprise, and the audit log has it. A grid worker sees the record but
neither the form nor the right to post it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.service import running_agent
from server.admin import register_device
from tests.agent.helpers import device_config, make_agent
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count
from tests.waiting import wait_until_async
from tests.web.helpers import Live, live_server, logged_in_page, notify_worker_at
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto, its schedule loop publishing commands quickly."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None},
                           schedule={"poll_interval_s": 0.2}, retention={"days": 30}) as running:
        yield running


async def test_supervisor_releases_a_household_and_its_device_disarms(
    tmp_path: Path, live: Live, browser: object,  # noqa: F811
    receiver: Receiver, mosquitto: Mosquitto,
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    await notify_worker_at(db, contents.workers["east"], receiver.apprise_url)
    east = contents.households["east"]
    # A second door of the household (the seed's door-east has a made-up event as seq 1).
    await register_device(db, "door-gate", household_id=east)
    async with db.transaction() as tx:  # armed by hand: the device gets the retained arm
        await tx.execute("UPDATE devices SET arm_command = 'arm', arm_command_at = ?, "
                         "arm_published_at = NULL WHERE device_id = 'door-gate'",
                         ("2026-01-01T00:00:00.000000Z",))
    password = mosquitto.add_device("door-gate")
    agent = make_agent(device_config(tmp_path, mosquitto, "door-gate", password,
                                     armed_default=False))

    def armed(value: bool) -> bool:
        return agent.state.armed is value

    async with running_agent(agent):
        await wait_until_async(lambda: armed(True), "the agent armed", 30)

        page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 900})
        await page.goto(f"{base}/households/{east}")
        await expect(page.locator("#releases")).to_contain_text("尚未解除隔离")
        await page.select_option("[data-testid=release-outcome]", "tested_negative")
        await page.fill("[data-testid=release-note]", "两次核酸阴性")
        await page.click("[data-testid=release]")
        await page.wait_for_url(f"**/households/{east}#release")
        row = page.locator("#releases tbody tr").first
        await expect(row).to_contain_text("super")
        await expect(row).to_contain_text("检测阴性，提前解除")
        await expect(row).to_contain_text("两次核酸阴性")
        await expect(page.locator("#release-form")).to_have_count(0)  # nothing left to end
        await page.screenshot(path=str(ARTIFACTS / "release.png"), full_page=True)

        # The device took the retained disarm and acknowledged it.
        await wait_until_async(lambda: armed(False), "the agent disarmed", 30)

        async def disarm_acked() -> bool:
            return await count(db, "SELECT COUNT(*) FROM events WHERE device_id = 'door-gate' "
                                   "AND type = 'command_ack' AND payload LIKE "
                                   "'%\"command\":\"disarm\"%'") == 1

        await wait_until_async(disarm_acked, "the device's ack of disarm", 30)

    assert await asyncio.to_thread(receiver.wait_for, 1)
    told = receiver.received[0]
    assert told["title"] == "【解除隔离】east family：检测阴性，提前解除"
    assert "门口设备已撤防" in str(told["message"])
    assert await count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'household.release' "
                           "AND actor = 'super'") == 1

    # The worker sees the record, not the form, and may not post it.
    page2 = await logged_in_page(browser, base, "east", viewport={"width": 390, "height": 844},
                                 is_mobile=True)
    await page2.goto(f"{base}/households/{east}")
    await expect(page2.locator("#releases tbody tr").first).to_contain_text("super")
    await page2.click("[data-testid=lang-en]")
    await expect(page2.locator("#releases tbody tr").first).to_contain_text(
        "Tested negative, released early")
    csrf = await page2.evaluate("document.querySelector('input[name=csrf_token]').value")
    refused = await page2.request.post(f"{base}/households/{east}/release", form={
        "csrf_token": csrf, "outcome": "other", "note": "x"})
    assert refused.status == 403
    assert await count(db, "SELECT COUNT(*) FROM releases") == 1
    await page.context.close()
    await page2.context.close()

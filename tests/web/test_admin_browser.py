"""Administration in the dashboard (issue 19, item 8), in a real browser, with a real agent.

A supervisor adds a household with its members and period and edits it; an
installer registers a device, the supervisor assigns it to the household;
a real agent (in-process, synthetic camera, mock door) connected through a
private Mosquitto answers the supervisor's snapshot request with a picture
shown on the device page, and takes the settings sent from there (its
``config_update``). Every change is in the audit log; a grid worker may do
none of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.service import running_agent
from agent.wiring import build_camera, synthetic_source
from tests.agent.helpers import device_config, make_agent
from tests.conftest import Mosquitto
from tests.e2e.helpers import count
from tests.waiting import wait_until_async
from tests.web.helpers import Live, live_server, logged_in_page
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

DEVICE = "door-zhou"


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server on Mosquitto."""
    async with live_server(tmp_path, mosquitto, followups={"remind_at": None},
                           schedule={"poll_interval_s": 0.2}) as running:
        yield running


async def test_supervisor_administers_households_and_devices(
    tmp_path: Path, live: Live, browser: object,  # noqa: F811
    mosquitto: Mosquitto,
) -> None:
    from playwright.async_api import expect

    _, contents, base, db = live
    local = datetime.now(ZoneInfo("Asia/Shanghai"))

    page = await logged_in_page(browser, base, "super", viewport={"width": 1280, "height": 900})
    await page.goto(f"{base}/households")
    form = page.locator("#add-household-form")
    await form.locator("input[name=name]").fill("周家")
    await form.locator("input[name=address]").fill("胜利路 7 号 2-302")
    await form.locator("select[name=grid_id]").select_option(label="east-grid")
    await form.locator("select[name=worker_id]").select_option(label="worker-east")
    await form.locator("textarea[name=members]").fill("周一\n周二")
    await form.locator("input[name=quarantine_start]").fill(
        (local - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    await form.locator("input[name=quarantine_end]").fill(
        (local + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"))
    await form.locator("button").click()
    await expect(page.locator("h1")).to_have_text("周家")
    household = int(page.url.rstrip("/").rsplit("/", 1)[-1])
    await expect(page.locator("fieldset.member legend")).to_have_text(["周一", "周二"])

    await page.locator("#edit-household summary").click()
    edit = page.locator("#edit-household-form")
    await expect(edit.locator("input[name=address]")).to_have_value("胜利路 7 号 2-302")
    await edit.locator("input[name=address]").fill("胜利路 7 号 2-303")
    await edit.locator("textarea[name=members]").fill("周一\n周二\n周三")
    await edit.locator("button").click()
    await expect(page.locator("fieldset.member legend")).to_have_text(["周一", "周二", "周三"])
    await expect(page.locator(".facts")).to_contain_text("胜利路 7 号 2-303")

    # The installer registers the device; the supervisor assigns it to the household.
    page2 = await logged_in_page(browser, base, "fitter")
    await page2.goto(f"{base}/devices")
    await expect(page2.locator("#register-device-form select")).to_have_count(0)  # no households
    await page2.fill("#register-device-form input[name=device_id]", DEVICE)
    await page2.click("#register-device-form button")
    await page2.wait_for_url(f"**/devices/{DEVICE}")
    await page2.context.close()
    await page.reload()
    await page.locator("#edit-household summary").click()
    await page.select_option("#assign-device-form select", DEVICE)
    await page.click("#assign-device-form button")
    await expect(page.locator(".facts")).to_contain_text(DEVICE)

    password = mosquitto.add_device(DEVICE)
    config = device_config(tmp_path, mosquitto, DEVICE, password,
                           camera={"backend": "synthetic"})
    agent = make_agent(config, camera=build_camera(config, synthetic_source(config)))
    async with running_agent(agent):
        assert await asyncio.to_thread(agent.link.connected.wait, 15)
        await page.goto(f"{base}/devices/{DEVICE}")
        await page.click("[data-testid=request-snapshot]")
        await expect(page.locator("#snapshot-status")).to_contain_text("super")

        async def pictured() -> bool:
            return await count(db, "SELECT COUNT(*) FROM snapshots WHERE device_id = ?",
                               (DEVICE,)) >= 1

        await wait_until_async(pictured, "the requested snapshot stored", 30)
        await page.reload()
        await expect(page.locator("#snapshot-status")).to_contain_text("设备已采用")
        picture = page.locator("#requested-snapshot")
        await expect(picture).to_be_visible()
        assert await picture.evaluate("img => img.complete && img.naturalWidth > 0")

        await page.fill("#settings-form input[name=min_passage_confidence]", "0.7")
        await page.fill("#settings-form input[name=heartbeat_interval_s]", "10")
        # The form posts and redirects back: let that navigation finish before the reload
        # below, or a slow redirect is still in flight when the page is reloaded.
        async with page.expect_navigation():
            await page.click("[data-testid=send-settings]")

        def taken() -> bool:
            return (agent.config.camera.min_passage_confidence == 0.7
                    and agent.config.heartbeat_interval_s == 10)

        await wait_until_async(taken, "the agent to take the new settings", 30)

        async def acknowledged() -> bool:
            return await count(db, "SELECT COUNT(*) FROM events WHERE device_id = ? AND "
                                   "type = 'command_ack' AND payload LIKE "
                                   "'%\"command\":\"config_update\"%'", (DEVICE,)) == 1

        await wait_until_async(acknowledged, "the device's ack of config_update", 30)
        await page.reload()
        await expect(page.locator("#settings-status")).to_contain_text("设备已采用")
        await page.click("[data-testid=lang-en]")
        await expect(page.locator("#settings-status")).to_contain_text("the device applied it")
        await page.screenshot(path=str(ARTIFACTS / "device-commands.png"), full_page=True)
        # A value the dashboard refuses never reaches the device.
        await page.fill("#settings-form input[name=jpeg_quality]", "150")
        await page.click("[data-testid=send-settings]")
        await expect(page.locator("p.error")).to_be_visible()

    actions = {r["action"] for r in await db.fetch_all(
        "SELECT action FROM audit_log WHERE actor IN ('super', 'fitter')")}
    assert {"household.add", "household.update", "device.register", "device.assign",
            "device.snapshot_request", "device.config_update"} <= actions
    assert await count(db, "SELECT COUNT(*) FROM audit_log "
                           "WHERE action = 'device.config_update'") == 1

    # A grid worker may do none of it.
    page3 = await logged_in_page(browser, base, "east")
    await page3.goto(f"{base}/households/{household}")
    await expect(page3.locator("#edit-household")).to_have_count(0)
    csrf = await page3.evaluate("document.querySelector('input[name=csrf_token]').value")
    for path, form_data in (("/households", {"name": "x", "address": "y"}),
                            (f"/households/{household}/edit", {"name": "x", "address": "y"}),
                            (f"/households/{household}/devices", {"device_id": DEVICE}),
                            ("/devices", {"device_id": "door-evil"}),
                            (f"/devices/{DEVICE}/snapshot", {}),
                            (f"/devices/{DEVICE}/settings", {"jpeg_quality": "90"})):
        response = await page3.request.post(base + path, form={**form_data, "csrf_token": csrf})
        assert response.status == 403, path
    assert contents.workers
    await page.context.close()
    await page3.context.close()

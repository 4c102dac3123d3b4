"""Aim picture and door line from the dashboard (issue 15, item 6), in a real browser.

A real ``doorwatch agent commission`` (simulated camera and door) sends its
aim picture and door line through a private Mosquitto to the real server; an
installer opens the device's page in Chromium, sees the line drawn on the
picture, redraws it with three clicks and sends it; a real simulated agent
(``doorwatch agent run --simulate``) receives the ``config_update``, stores the
new scene and acknowledges, which the page then shows. Who may do it and what
is refused are checked on the same server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker.door_line import DoorLine
from server.admin import register_device
from server.config import ServerSettings
from server.db.base import Database
from server.db.event_key import event_key
from server.web.app import create_app
from tests.conftest import Mosquitto, doorwatch_process
from tests.e2e.helpers import count
from tests.waiting import wait_until_async
from tests.web.helpers import Live, live_server, logged_in_page, login
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - fixture

DEVICE = "door-aim"


@pytest.fixture
async def live(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Live]:
    """The whole server (consumer, rules, dashboard on a free port) on Mosquitto."""
    async with live_server(tmp_path, mosquitto) as running:
        yield running


def _device_config(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    path = tmp_path / f"{DEVICE}.toml"
    path.write_text(f"""
device_id = "{DEVICE}"
data_dir = "{tmp_path / DEVICE}"
language = "en"
pin_factory = "mock"
heartbeat_interval_s = 2

[mqtt]
host = "127.0.0.1"
port = {mosquitto.tls_port}
tls = true
ca_file = "{mosquitto.broker.ca_cert_file}"

[door]
bounce_s = 0

[camera]
backend = "synthetic"
fps = 10

[commission]
door_timeout_s = 3
server_timeout_s = 20
camera_seconds = 1
""", encoding="utf-8")
    return path


def _override(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / DEVICE / "config-override.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.browser
@pytest.mark.broker
@pytest.mark.slow
async def test_installer_redraws_the_door_line_and_the_device_takes_it(
    tmp_path: Path, live: Live, browser: object,  # noqa: F811
    mosquitto: Mosquitto,
) -> None:
    from playwright.async_api import expect

    server, contents, base, _ = live
    await register_device(server.db, DEVICE, household_id=contents.households["east"])
    password = mosquitto.add_device(DEVICE)
    config = _device_config(tmp_path, mosquitto)
    env = {"DOORWATCH_AGENT__MQTT__PASSWORD": password, "DOORWATCH_LANG": "en"}
    commission = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "doorwatch", "agent", "commission", "-c", str(config),
         "--simulate", "--aim", str(tmp_path / "aim.png")],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env})
    assert "[PASS] Test event reaches the server" in commission.stdout, commission.stdout
    await wait_until_async(lambda: count(
        server.db, "SELECT COUNT(*) FROM snapshots WHERE device_id = ?", (DEVICE,)),
        "the commissioning aim picture stored")
    reported = json.loads(str((await server.db.fetch_one(
        "SELECT payload FROM events WHERE device_id = ? AND kind = 'commissioning'",
        (DEVICE,)))["payload"]))["door_line"]  # type: ignore[index]
    assert reported is not None  # the synthetic corridor's own line

    agent = doorwatch_process("agent", "run", "--simulate", "-c", str(config),
                              "--mean-interval", "3600", log=tmp_path / "agent.log", env=env)
    try:
        page = await logged_in_page(browser, base, "fitter",
                                    viewport={"width": 1280, "height": 900})  # an installer
        await page.goto(f"{base}/devices")
        await page.click(f"a[href='/devices/{DEVICE}']")
        picture = page.locator("#aim-picture")
        await expect(picture).to_be_visible()
        assert await picture.evaluate("img => img.complete && img.naturalWidth > 0")
        shown = page.locator("#current-line line").first
        assert float(await shown.get_attribute("x1") or "nan") == pytest.approx(
            reported["threshold"][0][0])
        await expect(page.locator("#line-status")).to_contain_text("reported it when commissioned")

        box = await picture.bounding_box()
        assert box is not None
        await page.click("#aim-redraw")
        await expect(page.locator("#aim-step")).to_contain_text("Step 1")
        await expect(page.locator("#aim-send")).to_be_disabled()
        for fx, fy in ((0.10, 0.80), (0.90, 0.80), (0.50, 0.30)):
            await picture.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        await expect(page.locator("#aim-step")).to_contain_text("Done")
        await page.screenshot(path=str(ARTIFACTS / "aim-redrawn.png"))
        await page.click("#aim-send")
        await page.wait_for_url(f"**/devices/{DEVICE}")

        # The device took it: its remote configuration holds the line, and it acknowledged.
        async def taken() -> bool:
            scene = _override(tmp_path).get("camera", {}).get("scene")  # type: ignore[union-attr]
            return bool(scene)

        await wait_until_async(taken, "the line in the device's remote configuration", 30,
                               detail=lambda: (tmp_path / "agent.log").read_text()[-3000:])
        scene = _override(tmp_path)["camera"]["scene"]  # type: ignore[index]
        flat = [v for point in scene["threshold"] for v in point]
        assert flat == pytest.approx([0.10, 0.80, 0.90, 0.80], abs=0.01)
        assert scene["inside_point"] == pytest.approx([0.50, 0.30], abs=0.01)
        assert "fitter" in scene["description"]
        async def shown_applied() -> bool:
            await page.reload()
            return "applied" in (await page.locator("#line-status").inner_text())

        await wait_until_async(shown_applied, "the page to show the line applied", 30,
                               every=0.2)
        await expect(page.locator("#line-status")).to_contain_text("the device applied it")
        await expect(page.locator("#line-status")).to_contain_text("drawn by fitter")
        drawn = page.locator("#current-line line").first
        assert float(await drawn.get_attribute("y1") or "nan") == pytest.approx(0.8, abs=0.01)
        await page.screenshot(path=str(ARTIFACTS / "aim-applied.png"))
        audit = await server.db.fetch_all(
            "SELECT actor, detail FROM audit_log WHERE action = 'device.door_line' "
            "AND subject = ?", (f"device:{DEVICE}",))
        assert [row["actor"] for row in audit] == ["fitter"]

        # A grid worker may not see or change a device's aim.
        worker_page = await logged_in_page(browser, base, "east")
        response = await worker_page.goto(f"{base}/devices/{DEVICE}")
        assert response is not None
        assert response.status == 403
        await worker_page.context.close()
        await page.context.close()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)


class _Recorder:
    """Stands in for the server's broker link in a page-only test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload))


async def test_redraw_is_checked_role_gated_and_audited(
    db: Database, settings: ServerSettings
) -> None:
    app = await create_app(db, settings)
    recorder = _Recorder()
    app.state.commands = recorder
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://testserver") as http:
        token = await login(http, "east")  # a grid worker
        good = {"x1": "0.1", "y1": "0.8", "x2": "0.9", "y2": "0.8", "inside_x": "0.5",
                "inside_y": "0.3", "csrf_token": token}
        refused = await http.post("/devices/door-east/door-line", data=good)
        assert refused.status_code == 403
        token = await login(http, "super")
        good["csrf_token"] = token
        page = await http.get("/devices/door-east")
        assert page.status_code == 200
        assert 'id="no-aim"' in page.text  # never commissioned: no picture yet
        on_line = {**good, "inside_x": "0.5", "inside_y": "0.8"}
        bad = await http.post("/devices/door-east/door-line", data=on_line)
        assert bad.status_code == 303
        assert bad.headers["location"].endswith("error=door_line")
        outside = await http.post("/devices/door-east/door-line", data={**good, "x1": "1.5"})
        assert outside.status_code == 422
        unknown = await http.post("/devices/door-9999/door-line", data=good)
        assert unknown.status_code == 404
        no_token = await http.post("/devices/door-east/door-line",
                                   data={k: v for k, v in good.items() if k != "csrf_token"})
        assert no_token.status_code == 403
        assert recorder.sent == []
        sent = await http.post("/devices/door-east/door-line", data=good)
        assert sent.status_code == 303
    assert len(recorder.sent) == 1
    topic, payload = recorder.sent[0]
    assert topic == "doorwatch/v1/cmd/door-east/config_update"
    body = json.loads(payload)
    scene = body["config"]["camera"]["scene"]
    line = DoorLine(threshold=scene["threshold"], inside_point=scene["inside_point"])
    assert line.threshold == ((0.1, 0.8), (0.9, 0.8))
    rows = await db.fetch_all("SELECT actor, detail FROM audit_log "
                              "WHERE action = 'device.door_line'")
    assert [r["actor"] for r in rows] == ["super"]
    assert json.loads(str(rows[0]["detail"]))["command_id"] == body["command_id"]


async def test_a_picture_without_a_line_asks_for_one(
    db: Database, settings: ServerSettings
) -> None:
    """A camera commissioned before any line was drawn: the bare picture, and a prompt to draw."""
    from broker.messages import Event, EventKind, encode, utc_now
    from ground.timeutil import now_ts

    event = Event(device_id="door-east", seq=9999, time=utc_now(), kind=EventKind.COMMISSIONING,
                  armed=False, snapshot=True)
    assert event.door_line is None
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO events (device_id, seq, event_id, event_key, type, kind, device_time, "
            "received_at, payload) VALUES (?, ?, ?, ?, 'event', 'commissioning', ?, ?, ?)",
            ("door-east", 9999, str(event.event_id), event_key(event.event_id), now_ts(),
             now_ts(), encode(event).decode()))
        await tx.execute(
            "INSERT INTO snapshots (event_id, device_id, taken_at, received_at, jpeg) "
            "VALUES (?, ?, ?, ?, ?)",
            (str(event.event_id), "door-east", now_ts(), now_ts(), b"\xff\xd8\xff\xe0jpeg"))
    app = await create_app(db, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://testserver") as http:
        await login(http, "fitter")
        page = await http.get("/devices/door-east")
        assert page.status_code == 200
        assert 'id="aim-picture"' in page.text
        assert 'id="current-line"' not in page.text
        assert "No door line yet" in page.text
        picture = await http.get(f"/devices/door-east/aim/{event.event_id}.jpg")
        assert picture.status_code == 200
        assert picture.headers["content-type"] == "image/jpeg"
        other = await http.get(f"/devices/door-west/aim/{event.event_id}.jpg")
        assert other.status_code == 404  # a picture is only served under its own device

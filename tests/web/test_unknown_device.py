"""A device id the server never registered is refused on every page and API call that takes one.

Never provisioned, or mistyped: nothing would ever report under it, so the
dashboard says so in the catalogue's words (the user's language on pages,
English in the API) instead of accepting it or answering "not found".
"""

from __future__ import annotations

import httpx

from ground.i18n import t
from server.db.base import Database
from tests.web.helpers import Seed, login


async def test_device_page_of_an_unknown_id_says_it_is_not_registered(
    client: httpx.AsyncClient, seeded: Seed
) -> None:
    await login(client, "admin")  # profile language: en
    page = await client.get("/devices/door-nope")
    assert page.status_code == 404
    assert t("web.error.device_unknown", "en") in page.text
    assert "door-nope" in page.text
    await client.post("/logout")
    await login(client, "super")  # profile language: zh_CN
    page = await client.get("/devices/door-nope")
    assert page.status_code == 404
    assert t("web.error.device_unknown", "zh_CN") in page.text


async def test_api_refuses_unknown_device_ids(client: httpx.AsyncClient, seeded: Seed,
                                              db: Database) -> None:
    csrf = await login(client, "fitter")
    headers = {"X-CSRF-Token": csrf}
    east = seeded.households["east"]
    message = t("web.error.device_unknown", "en")

    assigned = await client.post("/api/devices", headers=headers,
                                 json={"device_id": "door-9999", "household_id": east})
    assert (assigned.status_code, assigned.json()) == (404, {"detail": message})
    checked = await client.post("/api/devices", headers=headers, json={"device_id": "door-9999"})
    assert checked.status_code == 404
    assert await db.fetch_one("SELECT 1 FROM devices WHERE device_id = 'door-9999'") is None

    for old, new in (("door-east", "door-9999"), ("door-9999", "door-east")):
        replaced = await client.post(f"/api/devices/{old}/replace", headers=headers,
                                     json={"new_device_id": new, "reason": "broken"})
        assert (replaced.status_code, replaced.json()) == (404, {"detail": message}), (old, new)
    row = await db.fetch_one("SELECT household_id FROM devices WHERE device_id = 'door-east'")
    assert row == {"household_id": east}

    # A provisioned device is assigned as before.
    moved = await client.post("/api/devices", headers=headers,
                              json={"device_id": "door-west", "household_id": east})
    assert moved.status_code == 204
    row = await db.fetch_one("SELECT household_id FROM devices WHERE device_id = 'door-west'")
    assert row == {"household_id": east}

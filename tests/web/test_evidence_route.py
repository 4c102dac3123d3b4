"""The picture link an alert carries where the channel takes no attachments: behind log-in,
grid-scoped, the same crop as the attachment."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from ground.timeutil import now_ts
from server.db.base import Database
from tests.web.helpers import Seed, login


async def test_the_picture_link_shows_the_crop_to_who_may_see_the_incident(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    path = f"/incidents/{seeded.incidents['east']}/evidence.jpg"
    anonymous = await client.get(path)
    assert anonymous.status_code in (303, 307, 401)
    await login(client, "east")
    assert (await client.get(path)).status_code == 404  # no snapshot yet
    event = await db.fetch_one(
        "SELECT e.event_id, e.device_id FROM incident_events ie JOIN events e "
        "ON e.id = ie.event_row_id WHERE ie.incident_id = ?", (seeded.incidents["east"],))
    assert event is not None
    out = io.BytesIO()
    Image.new("RGB", (1600, 1200), (90, 120, 150)).save(out, format="JPEG")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO snapshots (event_id, device_id, taken_at, received_at, "
                         "jpeg) VALUES (?, ?, ?, ?, ?)",
                         (event["event_id"], event["device_id"], now_ts(), now_ts(),
                          out.getvalue()))
    shown = await client.get(path)
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(shown.content)) as image:
        assert image.size == (960, 720)  # no box, no door line: the whole, scaled
    await client.post("/logout", data={"csrf_token": ""})
    client.cookies.clear()
    await login(client, "west")  # another grid's worker
    assert (await client.get(path)).status_code == 404

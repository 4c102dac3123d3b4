"""The crossing's snapshot in the alert, end to end: Mosquitto -> server -> Apprise -> receiver.

First a real agent process in simulation (synthetic camera, real analyzer,
mock door) reports an exit early: its passage carries the person's box at the
crossing and its snapshot is the frame of the crossing, so the attached picture
is cropped around the synthetic person, tighter than the door line's crop.

Then a device publishes (over TLS, as a device) an exit announcing a snapshot, with
the person's box at the crossing, and the snapshot itself a moment later. The
server waits for it, crops it to the crossing, re-encodes it within the size
budget and attaches it through Apprise's ``json://`` (which takes
attachments); a worker on ``gotify://`` (which takes none) gets a link to the
picture instead. Both land on a local HTTP receiver.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image, ImageDraw

from broker.messages import (
    EpisodeInfo,
    Event,
    EventKind,
    PassageInfo,
    Snapshot,
    encode,
    utc_now,
)
from broker.topics import Channel, device_topic
from sensors.source_synthetic import Scenario, SyntheticSource
from server.domain import devices, households, people
from server.notify.evidence import crossing_region
from server.service import serve
from tests.conftest import Mosquitto, Receiver, doorwatch_process
from tests.e2e.helpers import seed_household, server_settings, tls_agent_config
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker

BUDGET = 60_000


def scene_jpeg() -> bytes:
    """A 1280x720 doorway picture with a person-sized figure, ~200 KB at quality 95."""
    image = Image.effect_noise((1280, 720), 40).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((540, 160, 740, 700), fill=(30, 60, 160))  # the person
    draw.line((300, 650, 980, 650), fill=(255, 255, 0), width=6)  # the sill
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def publish_exit_then_snapshot(broker: Mosquitto, device_id: str, password: str,
                               jpeg: bytes, delay_s: float) -> None:
    """As the agent does: the exit (announcing a snapshot), then the snapshot."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    broker.connect_device(client)
    client.loop_start()
    try:
        now = utc_now()
        passage = PassageInfo(t=1.2, direction="out", track=3, confidence=0.93,
                              box=(540 / 1280, 160 / 720, 740 / 1280, 700 / 720))
        event = Event(device_id=device_id, seq=1, time=now, kind=EventKind.EXIT, armed=True,
                      snapshot=True, episode=EpisodeInfo(
                          started_at=now, ended_at=now, door_sensor=True, passages=[passage],
                          confidence=0.93))
        client.publish(device_topic(device_id, Channel.EVENT), encode(event),
                       qos=1).wait_for_publish(10)
        time.sleep(delay_s)  # not a wait: the snapshot comes after the event, as on the device
        snap = Snapshot(device_id=device_id, event_id=event.event_id, taken_at=now,
                        jpeg_b64=base64.b64encode(jpeg).decode())
        client.publish(device_topic(device_id, Channel.SNAPSHOT), encode(snap),
                       qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_the_alert_carries_the_cropped_snapshot_or_a_link(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    settings = server_settings(tmp_path, mosquitto, notify={
        "retry_delays_s": [0.2, 0.5], "poll_interval_s": 0.05, "evidence_max_bytes": BUDGET,
        "evidence_wait_s": 5.0, "dashboard_url": "https://dw.example"})
    password = mosquitto.add_device("door-photo")
    jpeg = scene_jpeg()
    assert len(jpeg) > 3 * BUDGET
    async with serve(settings) as server:
        db = server.db
        url = f"127.0.0.1:{receiver.port}"
        worker = await people.add_worker(db, people.WorkerIn(
            name="王网格", apprise_urls=[f"json://{url}/phone", f"gotify://{url}/Atoken12345"]),
            actor="t")
        household = await households.add_household(db, households.HouseholdIn(
            name="张三家", address="幸福路 8 号", worker_id=worker), actor="t")
        await devices.register_device(db, "door-photo", household_id=household, actor="t")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        await asyncio.to_thread(publish_exit_then_snapshot, mosquitto, "door-photo",
                                password, jpeg, 0.4)

        async def both() -> bool:
            return len(receiver.received) >= 2

        await wait_until_async(both, "both channels' notifications at the receiver", 30,
                               detail=lambda: f"received {receiver.received}")
    json_posts = receiver.to("/phone")
    assert len(json_posts) == 1
    attachments = json_posts[0]["attachments"]
    assert isinstance(attachments, list)
    assert len(attachments) == 1
    attached = attachments[0]
    assert attached["filename"] == "evidence.jpg"
    assert attached["mimetype"] == "image/jpeg"
    picture = base64.b64decode(attached["base64"])
    assert picture[:3] == b"\xff\xd8\xff"  # a JPEG
    assert len(picture) <= BUDGET
    with Image.open(io.BytesIO(picture)) as image:
        assert image.format == "JPEG"
        # The person's box (200x540 px) widened by half its size on each side, clamped
        # to the frame: x 440..840, y 0..720 of the 1280x720 snapshot.
        assert image.size == (400, 720)
    gotify = [body for body, path in zip(receiver.received, receiver.paths, strict=False)
              if path.startswith("/message")]
    assert len(gotify) == 1
    assert "https://dw.example/incidents/1/evidence.jpg" in str(gotify[0]["message"])
    assert "现场照片" in str(gotify[0]["message"])


def _dark(image: Image.Image) -> int:
    """Pixels of the synthetic person's body (gray 50; nothing else in the corridor is
    darker than about 77, the floor under the person's shadow)."""
    return int((np.asarray(image.convert("L")) < 70).sum())


@pytest.mark.slow
async def test_a_simulated_agents_alert_is_cropped_around_the_person(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    device = "door-crop"
    password = mosquitto.add_device(device)
    settings = server_settings(tmp_path, mosquitto, notify={
        "retry_delays_s": [0.2, 0.5], "poll_interval_s": 0.05, "evidence_wait_s": 5.0})
    agent = None
    async with serve(settings) as server:
        db = server.db
        await seed_household(db, device, receiver.apprise_url, language="en")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        agent = doorwatch_process(
            "agent", "run", "--simulate", "-c", str(tls_agent_config(tmp_path, mosquitto, device)),
            "--seed", "5", "--mean-interval", "2", "--exit-probability", "1",
            log=tmp_path / "agent.log", env={"DOORWATCH_AGENT__MQTT__PASSWORD": password})
        try:
            async def alerted() -> bool:
                return any(body.get("attachments") for body in receiver.received)

            await wait_until_async(alerted, "an alert with the snapshot attached", 90,
                                   detail=lambda: (receiver.received,
                                                   (tmp_path / "agent.log").read_text()[-3000:]))
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
        row = await db.fetch_one(
            "SELECT e.payload, s.jpeg FROM events e JOIN snapshots s ON s.event_id = e.event_id "
            "WHERE e.kind = 'exit' ORDER BY e.id LIMIT 1", ())
        assert row is not None
    payload = json.loads(str(row["payload"]))
    assert payload["report"] == "early"
    (passage,) = payload["episode"]["passages"]
    alert = next(body for body in receiver.received if body.get("attachments"))
    attachments = alert["attachments"]
    assert isinstance(attachments, list)
    attached = attachments[0]
    assert isinstance(attached, dict)
    picture = base64.b64decode(attached["base64"])
    with Image.open(io.BytesIO(bytes(row["jpeg"]))) as snapshot, \
            Image.open(io.BytesIO(picture)) as crop:
        width, height = snapshot.size
        assert (width, height) == (320, 240)  # the synthetic camera's analysed frame
        # Tighter than the door line's crop (what the server does when no box came).
        scene = SyntheticSource(Scenario(), size=(64, 48)).scene
        line = {"threshold": [list(p) for p in scene.threshold],
                "inside_point": list(scene.inside_point)}
        lx1, ly1, lx2, ly2 = crossing_region(None, line) or (0.0, 0.0, 1.0, 1.0)
        assert crop.width * crop.height < 0.7 * (lx2 - lx1) * width * (ly2 - ly1) * height
        # The agent put the person's box on the wire, and the crop is that box widened by
        # half its size (server/notify/evidence.py).
        box = passage.get("box")
        assert box is not None, payload
        x1, y1, x2, y2 = crossing_region(tuple(box), None) or (0.0, 0.0, 1.0, 1.0)
        assert abs(crop.width - (x2 - x1) * width) <= 2
        assert abs(crop.height - (y2 - y1) * height) <= 2
        # The person is in the snapshot, and (nearly) all of them is in the crop.
        person = _dark(snapshot)
        assert person > 200
        assert _dark(crop) >= 0.85 * person

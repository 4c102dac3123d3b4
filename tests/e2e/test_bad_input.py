"""Bad input through the real broker: every message recorded as rejected, the consumer lives on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count, seed_household, server_settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def _publisher(broker: Mosquitto, device_id: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.username_pw_set(device_id, password)
    broker.connect_device(client)
    client.loop_start()
    return client


def _good(device_id: str, seq: int) -> bytes:
    return encode(Event(device_id=device_id, seq=seq, time=utc_now(), kind=EventKind.HANDOVER,
                        armed=True))


async def test_each_kind_of_bad_message_is_recorded_with_its_reason(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    known = mosquitto.add_device("door-301")
    stranger = mosquitto.add_device("door-399")  # has broker credentials, not registered
    event_topic = device_topic("door-301", Channel.EVENT)
    good = json.loads(_good("door-301", 1))
    bad_payloads: list[tuple[str, bytes, str]] = [
        (event_topic, b"{not json", "not JSON"),
        (event_topic, b"\xff\xfe\x00garbage", "not JSON"),
        (event_topic, b"[1, 2, 3]", "not a JSON object"),
        (event_topic, json.dumps({**good, "v": 3}).encode(), "unsupported schema version 3"),
        # Version 2 exists for events only, and with its episode report fields.
        (event_topic, json.dumps({**good, "v": 2}).encode(), "needs episode_id and report"),
        (event_topic, json.dumps({**good, "seq": 0}).encode(), "seq"),
        (event_topic, json.dumps({**good, "kind": "teleported"}).encode(), "kind"),
        (event_topic, json.dumps({**good, "surprise": 1}).encode(), "surprise"),
        (event_topic, json.dumps({**good, "detail": "x" * 70_000}).encode(), "exceeds"),
        (event_topic, json.dumps({**good, "device_id": "door-302"}).encode(), "differs"),
        (device_topic("door-301", Channel.HEARTBEAT), _good("door-301", 2), "not allowed"),
    ]
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        db = server.db
        await seed_household(db, "door-301", receiver.apprise_url)
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        client = _publisher(mosquitto, "door-301", known)
        for topic, payload, _ in bad_payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.publish(event_topic, _good("door-301", 1), qos=1).wait_for_publish(5)
        other = _publisher(mosquitto, "door-399", stranger)
        other.publish(device_topic("door-399", Channel.EVENT), _good("door-399", 1),
                      qos=1).wait_for_publish(5)
        expected_rejections = len(bad_payloads) + 1
        await wait_until_async(lambda: _at_least(
            count(db, "SELECT COUNT(*) FROM rejected_messages"), expected_rejections),
            f"{expected_rejections} rejections recorded")
        await wait_until_async(
            lambda: _at_least(count(db, "SELECT COUNT(*) FROM events"), 1), "the good event stored")
        rejected = await db.fetch_all(
            "SELECT topic, device_id, reason, payload_size FROM rejected_messages ORDER BY id")
        stored = await db.fetch_all("SELECT device_id, seq FROM events")
        for client_ in (client, other):
            client_.loop_stop()
            client_.disconnect()
    assert stored == [{"device_id": "door-301", "seq": 1}]
    assert len(rejected) == expected_rejections
    by_reason = [r["reason"] for r in rejected]
    for (_topic, _payload, fragment), reason in zip(bad_payloads, by_reason, strict=False):
        assert fragment in reason, (fragment, reason)
    assert rejected[-1]["reason"] == "unknown device"
    assert rejected[-1]["device_id"] == "door-399"
    oversized = next(r for r in rejected if "exceeds" in r["reason"])
    assert oversized["payload_size"] > 70_000


async def _at_least(value: object, expected: int) -> bool:
    return await value >= expected  # type: ignore[misc, operator]

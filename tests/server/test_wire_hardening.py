"""Issue 17 items 10-12 with a real device client over the shipped broker config.

Each test publishes with paho over TLS as a provisioned device, the real
server (``serve``) ingests, and the test reads what the database kept: on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from server.service import serve
from tests.broker.helpers import Client, connect
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings
from tests.server.helpers import rows, scalar, seed
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def _event(device: str, seq: int, **fields: Any) -> dict[str, Any]:
    fields.setdefault("kind", EventKind.HANDOVER)
    fields.setdefault("armed", True)
    model = Event(device_id=device, seq=seq, time=utc_now(), **fields)
    return dict(json.loads(encode(model)))


async def _publish(client: Client, device: str, payloads: list[dict[str, Any]]) -> None:
    topic = device_topic(device, Channel.EVENT)
    for payload in payloads:
        await asyncio.to_thread(client.publish, topic, json.dumps(payload).encode())


async def _settled(db: Any, stored: int, rejected: int) -> bool:
    return (await scalar(db, "SELECT COUNT(*) FROM events") >= stored
            and await scalar(db, "SELECT COUNT(*) FROM rejected_messages") >= rejected)


async def test_wrong_json_types_are_rejected_with_their_reason(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password = mosquitto.add_device("door-1")
    good = _event("door-1", 12)
    wrong = [
        ({**good, "seq": "12"}, "seq: Input should be a valid integer"),
        ({**good, "seq": 12.0}, "seq: Input should be a valid integer"),
        ({**good, "seq": True}, "seq: Input should be a valid integer"),
        ({**good, "armed": "true"}, "armed: Input should be a valid boolean"),
        ({**good, "armed": 1}, "armed: Input should be a valid boolean"),
        ({**good, "time": 1_780_000_000}, "time: Input should be a valid datetime"),
        ({**good, "v": True}, "v: Input should be a valid integer"),
    ]
    async with serve(server_settings(tmp_path, mosquitto, database_url=database_url)) as server:
        await seed(server.db)
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        device = await asyncio.to_thread(connect, mosquitto, "door-1", password)
        await _publish(device, "door-1", [payload for payload, _ in wrong] + [good])
        await wait_until_async(lambda: _settled(server.db, 1, len(wrong)),
                               "1 event stored and every wrong copy rejected")
        await asyncio.to_thread(device.close)
        stored = await rows(server.db, "SELECT seq, payload FROM events")
        rejected = await rows(server.db, "SELECT device_id, reason FROM rejected_messages "
                                         "ORDER BY id")
    # Only the well-typed copy is stored, exactly as sent.
    assert [(r["seq"], json.loads(r["payload"])) for r in stored] == [(12, good)]
    assert [r["device_id"] for r in rejected] == ["door-1"] * len(wrong)
    for (_, fragment), row in zip(wrong, rejected, strict=True):
        assert fragment in row["reason"], (fragment, row["reason"])


async def test_altered_copy_and_reused_event_id_are_recorded_not_dropped_or_stored_twice(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password_a = mosquitto.add_device("door-1")
    password_b = mosquitto.add_device("door-2")
    original = _event("door-1", 1, kind=EventKind.HANDOVER)
    event_id = original["event_id"]
    altered = {**original, "kind": "exit"}          # same device, seq and event_id
    reused = _event("door-1", 2, event_id=event_id)  # the same event_id under a new seq
    taken_seq = _event("door-1", 1, event_id=uuid4())  # a new event_id under a used seq
    theft = _event("door-2", 1, event_id=event_id)  # another device's event_id
    async with serve(server_settings(tmp_path, mosquitto, database_url=database_url)) as server:
        await seed(server.db)
        await seed(server.db, device="door-2")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        a = await asyncio.to_thread(connect, mosquitto, "door-1", password_a)
        b = await asyncio.to_thread(connect, mosquitto, "door-2", password_b)
        await _publish(a, "door-1", [original])
        await wait_until_async(lambda: _settled(server.db, 1, 0),
                               "1 stored, 0 rejected")
        # A redelivery (byte-identical) is harmless and not a rejection.
        await _publish(a, "door-1", [original, altered, reused, taken_seq])
        await _publish(b, "door-2", [theft])
        await wait_until_async(lambda: _settled(server.db, 1, 4),
                               "1 stored, 4 rejected")
        # One more good record from each: everything before it has been processed.
        await _publish(a, "door-1", [_event("door-1", 3)])
        await _publish(b, "door-2", [_event("door-2", 2)])
        await wait_until_async(lambda: _settled(server.db, 3, 4),
                               "3 stored, 4 rejected")
        for client in (a, b):
            await asyncio.to_thread(client.close)
        stored = await rows(server.db, "SELECT device_id, seq, event_id, kind FROM events "
                                       "ORDER BY device_id, seq")
        rejected = await rows(server.db, "SELECT device_id, reason, payload FROM "
                                         "rejected_messages ORDER BY id")
    assert [(r["device_id"], r["seq"], r["kind"]) for r in stored] == [
        ("door-1", 1, "handover"), ("door-1", 3, "handover"), ("door-2", 2, "handover")]
    assert sum(1 for r in stored if r["event_id"] == event_id) == 1
    reasons = {r["device_id"] + ": " + r["reason"] for r in rejected}
    assert reasons == {
        f"door-1: altered copy of stored record seq 1 (event_id {event_id}): differs in kind",
        f"door-1: event_id {event_id} is already stored as seq 1",
        f"door-1: seq 1 is already stored with event_id {event_id}",
        f"door-2: event_id {event_id} is already stored as seq 1 of device door-1",
    }
    kept = {json.loads(bytes(r["payload"]))["kind"] for r in rejected}
    assert "exit" in kept  # the altered copy itself is kept for inspection

"""Issue 17 items 5 and 6 with real device clients over the shipped broker config.

A device's snapshot counts for its own events only; junk a device sends is
recorded within a bound (truncated and hashed, a daily budget per device,
purged by retention) and counted per device on /metrics. The real server
(``serve``, dashboard on) ingests; SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from broker.messages import Event, EventKind, Snapshot, encode, utc_now
from broker.topics import Channel, device_topic
from server.jobs.retention import purge_due
from server.service import RunningServer, serve
from tests.broker.helpers import Client, connect
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings
from tests.server.helpers import rows, scalar, seed
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def _snapshot(device: str, event_id: object, jpeg: bytes) -> bytes:
    return encode(Snapshot(device_id=device, event_id=event_id, taken_at=utc_now(),
                           jpeg_b64=base64.b64encode(jpeg).decode()))


async def _send(client: Client, device: str, channel: Channel, payload: bytes) -> None:
    await asyncio.to_thread(client.publish, device_topic(device, channel), payload)


async def test_a_device_cannot_replace_another_devices_evidence(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password_a, password_b = mosquitto.add_device("door-a"), mosquitto.add_device("door-b")
    b_event = Event(device_id="door-b", seq=1, time=utc_now(), kind=EventKind.EXIT, armed=True,
                    snapshot=True)
    later_event_id = uuid4()  # door-b's next event, not sent yet when door-a squats on it
    async with serve(server_settings(tmp_path, mosquitto, database_url=database_url)) as server:
        db = server.db
        await seed(db, device="door-a")
        await seed(db, device="door-b")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        a = await asyncio.to_thread(connect, mosquitto, "door-a", password_a)
        b = await asyncio.to_thread(connect, mosquitto, "door-b", password_b)
        await _send(b, "door-b", Channel.EVENT, encode(b_event))
        await wait_until_async(lambda: _count(db, "events", 1), "door-b's event stored")
        # door-a names door-b's stored event, and door-b's next one before it exists.
        await _send(a, "door-a", Channel.SNAPSHOT, _snapshot("door-a", b_event.event_id, b"A1"))
        await _send(a, "door-a", Channel.SNAPSHOT, _snapshot("door-a", later_event_id, b"A2"))
        await wait_until_async(lambda: _count(db, "rejected_messages", 1),
                               "door-a's first snapshot rejected")
        await _send(b, "door-b", Channel.SNAPSHOT, _snapshot("door-b", b_event.event_id, b"B1"))
        later = Event(device_id="door-b", seq=2, event_id=later_event_id, time=utc_now(),
                      kind=EventKind.EXIT, armed=True, snapshot=True)
        await _send(b, "door-b", Channel.EVENT, encode(later))
        await _send(b, "door-b", Channel.SNAPSHOT, _snapshot("door-b", later_event_id, b"B2"))
        await wait_until_async(lambda: _count(db, "rejected_messages", 2),
                               "door-a's second snapshot rejected")
        await wait_until_async(lambda: _count(db, "snapshots", 2), "door-b's two snapshots stored")
        for client in (a, b):
            await asyncio.to_thread(client.close)
        kept = await rows(db, "SELECT event_id, device_id, jpeg FROM snapshots ORDER BY jpeg")
        rejected = await rows(db, "SELECT device_id, reason FROM rejected_messages ORDER BY id")
        audited = await rows(db, "SELECT actor, subject FROM audit_log "
                                 "WHERE action = 'security.snapshot_for_other_device'")
    assert [(r["event_id"], r["device_id"], bytes(r["jpeg"])) for r in kept] == [
        (str(b_event.event_id), "door-b", b"B1"), (str(later_event_id), "door-b", b"B2")]
    assert [(r["device_id"], r["reason"].split(";")[0]) for r in rejected] == [
        ("door-a", f"snapshot for event_id {b_event.event_id} of another device (door-b)"),
        ("door-a", f"snapshot for event_id {later_event_id} of another device (door-b)"),
    ]
    assert audited == [{"actor": "device:door-a", "subject": "device:door-b"}]


async def _count(db: object, table: str, at_least: int) -> bool:
    return await scalar(db, f"SELECT COUNT(*) FROM {table}") >= at_least  # type: ignore[arg-type]  # noqa: S608


async def _flood(mosquitto: Mosquitto, password: str, server: RunningServer,
                 junk: list[bytes]) -> None:
    """Publish ``junk`` as door-1 and wait until the server counted every message."""
    assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
    device = await asyncio.to_thread(connect, mosquitto, "door-1", password)

    def publish_all() -> None:
        # Back to back, then every PUBACK awaited: one at a time, each 60 kB message
        # waited ~45 ms for its PUBACK (Nagle holding the last segment until the broker's
        # delayed ACK), 14 s for the 300. One connection at QoS 1 keeps their order.
        topic = device_topic("door-1", Channel.EVENT)
        sent = [device.paho.publish(topic, payload, qos=1) for payload in junk]
        for info in sent:
            info.wait_for_publish(timeout=30)
            assert info.is_published()

    await asyncio.to_thread(publish_all)

    async def counted() -> bool:
        return await scalar(server.db, "SELECT COALESCE(SUM(total), 0) FROM rejected_counts "
                                       "WHERE device_id = 'door-1'") >= len(junk)

    await wait_until_async(counted, f"the server to count {len(junk)} rejected messages")
    await asyncio.to_thread(device.close)


async def _metrics(server: RunningServer) -> str:
    assert server.web is not None
    async with httpx.AsyncClient(base_url=server.web.url) as http:
        return (await http.get("/metrics")).text


_WEB = {"enabled": True, "port": 0, "cookie_secure": False}


async def test_junk_is_stored_truncated_hashed_within_a_budget_counted_and_purged(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    """The probe: 300 junk messages of 60 kB were 18 MB in rejected_messages, kept forever."""
    password = mosquitto.add_device("door-1")
    junk = [bytes([65 + i % 26]) * 60_000 + str(i).encode() for i in range(300)]
    settings = server_settings(tmp_path, mosquitto, database_url=database_url, http=_WEB)
    async with serve(settings) as server:
        await seed(server.db, device="door-1")
        await _flood(mosquitto, password, server, junk)
        kept = await rows(server.db, "SELECT device_id, payload, payload_size, payload_sha256 "
                                     "FROM rejected_messages ORDER BY id")
        metrics = await _metrics(server)
        # Retention: a month later the rows are gone, the counts stay.
        report = await purge_due(server.db, days=90, actor="test", rejected_days=30,
                                 clock=_Later(timedelta(days=31)))
        left = await scalar(server.db, "SELECT COUNT(*) FROM rejected_messages")
        metrics_after = await _metrics(server)
    assert len(kept) == 300
    assert {r["device_id"] for r in kept} == {"door-1"}
    for i, row in enumerate(kept):
        assert row["payload_size"] == len(junk[i])
        assert row["payload_sha256"] == hashlib.sha256(junk[i]).hexdigest()
        if row["payload"] is not None:
            assert bytes(row["payload"]) == junk[i][:4096]  # truncated
    # 256 payloads of 4 KiB fill the device's 1 MiB a day; later rows keep no payload.
    assert [r["payload"] is None for r in kept] == [False] * 256 + [True] * 44
    assert 'doorwatch_device_messages_rejected_total{device_id="door-1"} 300.0' in metrics
    assert report.rejected_messages == 300
    assert left == 0
    assert 'doorwatch_device_messages_rejected_total{device_id="door-1"} 300.0' in metrics_after
    assert "doorwatch_messages_rejected_total 300.0" in metrics_after


async def test_past_the_daily_row_budget_junk_is_counted_not_stored(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password = mosquitto.add_device("door-1")
    junk = [b"{junk " + str(i).encode() for i in range(300)]
    settings = server_settings(tmp_path, mosquitto, database_url=database_url, http=_WEB,
                               ingest={"rejected_rows_per_device_day": 280})
    async with serve(settings) as server:
        await seed(server.db, device="door-1")
        await _flood(mosquitto, password, server, junk)
        stored = await scalar(server.db, "SELECT COUNT(*) FROM rejected_messages")
        metrics = await _metrics(server)
    assert stored == 280
    assert 'doorwatch_device_messages_rejected_total{device_id="door-1"} 300.0' in metrics
    assert ('doorwatch_device_messages_rejected_unrecorded_total{device_id="door-1"} 20.0'
            in metrics)


class _Later:
    """A clock ``offset`` ahead of now."""

    def __init__(self, offset: timedelta):
        self._offset = offset

    def now(self) -> object:
        from ground.timeutil import utcnow

        return utcnow() + self._offset

"""Batch ingest: what a batch stores, how rejections are logged, prepare/store in two steps."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from broker.messages import Event, EventKind, encode
from broker.topics import Channel, device_topic
from server.admin import add_household, register_device
from server.db.base import Database
from server.ingest.ingestor import Ingestor
from server.mqtt.inbound import InboundMessage
from tests.server.helpers import settings_for

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _event(device: str, seq: int, kind: EventKind = EventKind.HANDOVER) -> InboundMessage:
    payload = encode(Event(device_id=device, seq=seq, time=AT, kind=kind, armed=True))
    return InboundMessage(device_topic(device, Channel.EVENT), payload, mid=seq, qos=1)


async def test_a_flood_of_garbage_is_stored_whole_and_logged_in_a_few_lines(
    db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await register_device(db, "door-1", household_id=None)
    ingestor = Ingestor(db, settings_for(database_url))
    garbage = [InboundMessage(device_topic("door-1", Channel.EVENT), f"not json {i} {{".encode())
               for i in range(300)]
    garbage += [InboundMessage(device_topic(f"ghost-{i}", Channel.EVENT), b"{}")
                for i in range(40)]
    with caplog.at_level(logging.WARNING, logger="server.ingest.ingestor"):
        result = await ingestor.process([*garbage, _event("door-1", 1)])
    assert result.rejected == 340
    assert result.stored == 1
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM rejected_messages")
    assert row is not None
    assert row["n"] == 340
    lines = [r for r in caplog.records if r.name == "server.ingest.ingestor"]
    assert len(lines) <= 21
    assert sum(int(getattr(r, "count", 0)) for r in lines) == 340
    assert lines[-1].getMessage() == "more messages rejected in this batch"


async def test_prepare_then_store_equals_process_and_households_are_stamped(
    db: Database, database_url: str
) -> None:
    household = await add_household(db, "张三家", "幸福路 8 号 3-502", worker_id=None)
    await register_device(db, "door-1", household_id=household)
    await register_device(db, "door-2", household_id=None)
    ingestor = Ingestor(db, settings_for(database_url))
    second = _event("door-1", 2)
    # A redelivered copy is byte-identical (the outbox's record) and counts as a duplicate.
    prepared = await ingestor.prepare([_event("door-1", 1), _event("door-2", 1), second, second])
    result = await ingestor.store(prepared)
    assert (result.stored, result.duplicates, result.rejected) == (3, 1, 0)
    rows = await db.fetch_all("SELECT device_id, seq, household_id FROM events "
                              "ORDER BY device_id, seq")
    assert [(r["device_id"], r["seq"], r["household_id"]) for r in rows] == [
        ("door-1", 1, household), ("door-1", 2, household), ("door-2", 1, None)]

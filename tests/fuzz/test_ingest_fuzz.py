"""Property-based fuzzing of the server's ingest: every message is stored, a duplicate, or rejected.

Batches mixing valid records, health messages, junk and near-valid payloads of
registered and unknown devices go through the real Ingestor on a real SQLite
database (with a household, so the rules run too). ``process`` never raises,
and the counts add up: nothing is neither stored nor rejected.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.messages import CommandAck, Event, EventKind, encode
from broker.topics import Channel, device_topic
from ground.timeutil import utcnow
from server.db.base import Database
from server.db.connect import open_database
from server.ingest.ingestor import Ingestor
from server.mqtt.inbound import InboundMessage
from tests.e2e.helpers import seed_household
from tests.fuzz.strategies import FUZZ, any_bytes, mutated, valid_for_channel

KNOWN = "door-fz1"
UNKNOWN = "door-fz9"


@dataclass
class Rig:
    """An event loop kept across examples, a migrated database and the ingestor."""

    runner: asyncio.Runner
    db: Database
    ingestor: Ingestor

    def count(self, sql: str) -> int:
        async def query() -> int:
            row = await self.db.fetch_one(sql)
            assert row is not None
            return int(next(iter(row.values())))
        return self.runner.run(query())


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """One database for the whole module: examples add to it, the properties are per batch."""
    from server.config import load_server_settings

    with tempfile.TemporaryDirectory() as folder, asyncio.Runner() as runner:
        settings = load_server_settings(None, database_url=f"sqlite:///{folder}/fuzz.db",
                                        data_dir=str(Path(folder) / "data"), instance="fuzz")
        db = runner.run(open_database(settings.database_url))
        runner.run(seed_household(db, KNOWN, "json://127.0.0.1:9/never"))
        yield Rig(runner, db, Ingestor(db, settings))
        runner.run(db.close())


def _message(device_id: str, channel: str, payload: bytes) -> InboundMessage:
    return InboundMessage(topic=device_topic(device_id, Channel(channel)), payload=payload)


@st.composite
def inbound(draw: st.DrawFn) -> InboundMessage:
    """One message as the broker would hand it over: valid, near-valid or junk."""
    device_id = draw(st.sampled_from([KNOWN, KNOWN, UNKNOWN]))
    channel = draw(st.sampled_from([c.value for c in Channel]))
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "junk"]))
    if kind == "junk":
        return _message(device_id, channel, draw(any_bytes))
    model = draw(valid_for_channel(channel, device_id))
    if kind == "valid":
        return _message(device_id, channel, encode(model))
    broken = draw(mutated(json.loads(encode(model))))
    return _message(device_id, channel, json.dumps(broken).encode())


@FUZZ
@given(batch=st.lists(inbound(), min_size=1, max_size=30))
def test_every_message_is_stored_a_duplicate_or_rejected(
    rig: Rig, batch: list[InboundMessage]
) -> None:
    before = (rig.count("SELECT COUNT(*) FROM rejected_messages"),
              rig.count("SELECT COUNT(*) FROM events"))
    result = rig.runner.run(rig.ingestor.process(batch))  # must not raise
    after = (rig.count("SELECT COUNT(*) FROM rejected_messages"),
             rig.count("SELECT COUNT(*) FROM events"))
    assert after[0] - before[0] == result.rejected
    assert after[1] - before[1] == result.stored
    records = sum(1 for m in batch if m.topic.endswith("/event")) - sum(
        1 for m in batch if m.topic.endswith("/event") and _rejected_alone(rig, m))
    # Health messages update the device and are neither; records are one of the three.
    assert result.stored + result.duplicates <= records


def _rejected_alone(rig: Rig, message: InboundMessage) -> bool:
    from broker.messages import decode_device_message
    from broker.topics import parse_topic
    from ground.errors import PayloadError

    try:
        model = decode_device_message(parse_topic(message.topic), message.topic, message.payload)
    except PayloadError:
        return True
    return model.device_id == UNKNOWN


def _event(seq: int) -> bytes:
    return encode(Event(device_id=KNOWN, seq=seq, time=utcnow(), kind=EventKind.HANDOVER,
                        armed=True))


def test_redelivery_is_a_duplicate_but_a_reused_seq_is_rejected(rig: Rig) -> None:
    """Found by the flood: a new record under a stored seq was dropped as a duplicate."""
    seq = 9_000_000_000
    first = _message(KNOWN, "event", _event(seq))
    reused = _message(KNOWN, "event", _event(seq))  # same seq, another event_id
    ack = _message(KNOWN, "event", encode(CommandAck(
        device_id=KNOWN, seq=seq, time=utcnow(), command_id=uuid4(), command="ping", ok=True)))
    result = rig.runner.run(rig.ingestor.process([first, first, reused, ack]))
    assert (result.stored, result.duplicates, result.rejected) == (1, 1, 2)
    again = rig.runner.run(rig.ingestor.process([first]))
    assert (again.stored, again.duplicates, again.rejected) == (0, 1, 0)


def test_snapshot_with_non_ascii_base64_is_rejected_not_a_batch_failure(rig: Rig) -> None:
    """Found by fuzzing: non-ASCII jpeg_b64 raised ValueError and failed the whole batch."""
    snapshot = json.dumps({"v": 1, "type": "snapshot", "device_id": KNOWN,
                           "event_id": str(uuid4()), "taken_at": "2026-01-01T00:00:00Z",
                           "jpeg_b64": "\u00e9t\u00e9"}).encode()
    result = rig.runner.run(rig.ingestor.process([_message(KNOWN, "snapshot", snapshot),
                                                  _message(KNOWN, "event", _event(77))]))
    assert (result.stored, result.rejected) == (1, 1)


def test_exit_with_an_absurd_passage_time_is_rejected_not_a_batch_failure(rig: Rig) -> None:
    """Found by fuzzing: a passage 1e12 s into its episode overflowed the crossing time
    (``timedelta``) while the rules ran, and the whole batch failed to store."""
    exit_event = json.loads(encode(Event(
        device_id=KNOWN, seq=9_100_000_000, time=utcnow(), kind=EventKind.EXIT, armed=True)))
    started = exit_event["time"]
    exit_event["episode"] = {
        "started_at": started, "ended_at": started, "door_sensor": True, "confidence": 0.9,
        "camera_ok": True,
        "passages": [{"t": 1e12, "direction": "out", "track": 1, "confidence": 0.9}]}
    result = rig.runner.run(rig.ingestor.process([
        _message(KNOWN, "event", json.dumps(exit_event).encode()),
        _message(KNOWN, "event", _event(9_100_000_001))]))
    assert (result.stored, result.rejected) == (1, 1)

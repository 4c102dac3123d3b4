"""An event_id is unique through its 64-bit key (server/db/event_key.py).

Different event_ids with the same key are all stored (each with its own
``key_collision`` number); a reuse of any of them is still rejected, never
stored twice; the migration gives stored rows their keys. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from broker.messages import Event, EventKind, encode
from broker.topics import Channel, device_topic
from server.admin import register_device
from server.db.base import Database
from server.db.event_key import event_key
from server.db.migrate import migrate
from server.db.postgres import PostgresDatabase
from server.db.sqlite import SqliteDatabase
from server.ingest.ingestor import Ingestor
from server.mqtt.inbound import InboundMessage
from tests.server.helpers import settings_for

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MASK = (1 << 64) - 1


def _twin(event_id: UUID, flip: int) -> UUID:
    """A different UUID with the same key: both halves XORed with ``flip``."""
    value = event_id.int ^ ((flip << 64) | flip)
    return UUID(int=value & ((1 << 128) - 1))


def _event(device: str, seq: int, event_id: UUID) -> InboundMessage:
    payload = encode(Event(device_id=device, seq=seq, time=AT, kind=EventKind.HANDOVER,
                           armed=True, event_id=event_id))
    return InboundMessage(device_topic(device, Channel.EVENT), payload, mid=seq, qos=1)


async def _stored(db: Database) -> list[tuple[str, int, str, int]]:
    rows = await db.fetch_all("SELECT device_id, seq, event_id, key_collision FROM events "
                              "ORDER BY id")
    return [(r["device_id"], int(r["seq"]), str(r["event_id"]), int(r["key_collision"]))
            for r in rows]


async def _reasons(db: Database) -> list[str]:
    rows = await db.fetch_all("SELECT device_id, reason FROM rejected_messages ORDER BY id")
    return [f"{r['device_id']}: {r['reason']}" for r in rows]


def test_the_key_folds_both_halves_and_twins_share_it() -> None:
    first = uuid4()
    assert event_key(first) == event_key(_twin(first, 0x5A5A))
    assert _twin(first, 0x5A5A) != first
    assert -(1 << 63) <= event_key(UUID(int=(1 << 128) - 1)) < (1 << 63)
    assert event_key(UUID(int=(1 << 127))) == -(1 << 63)


async def test_colliding_keys_are_all_stored_and_reuse_is_still_rejected(
    db: Database, database_url: str
) -> None:
    await register_device(db, "door-1", household_id=None)
    await register_device(db, "door-2", household_id=None)
    ingestor = Ingestor(db, settings_for(database_url))
    e1 = uuid4()
    e2, e3, e4 = _twin(e1, 1), _twin(e1, 2), _twin(e1, 3)
    result = await ingestor.process([_event("door-1", 1, e1), _event("door-1", 2, e2)])
    assert (result.stored, result.duplicates, result.rejected) == (2, 0, 0)
    # A third twin from another device, e2 redelivered (harmless), e2 reused under a new
    # seq, and a fourth twin sent twice under two seqs in the same batch.
    result = await ingestor.process([
        _event("door-2", 1, e3), _event("door-1", 2, e2), _event("door-1", 3, e2),
        _event("door-1", 4, e4), _event("door-1", 5, e4)])
    assert (result.stored, result.duplicates, result.rejected) == (2, 1, 2)
    assert await _stored(db) == [("door-1", 1, str(e1), 0), ("door-1", 2, str(e2), 1),
                                 ("door-2", 1, str(e3), 2), ("door-1", 4, str(e4), 3)]
    assert await _reasons(db) == [f"door-1: event_id {e2} is already stored as seq 2",
                                  f"door-1: event_id {e4} is already stored as seq 4"]
    # Reusing a twin from another device names that device, as for any event_id.
    result = await ingestor.process([_event("door-2", 2, e1), _event("door-2", 3, e4)])
    assert (result.stored, result.rejected) == (0, 2)
    assert (await _reasons(db))[2:] == [
        f"door-2: event_id {e1} is already stored as seq 1 of device door-1",
        f"door-2: event_id {e4} is already stored as seq 4 of device door-1"]


async def test_the_migration_keys_stored_rows_and_numbers_their_collisions(
    database_url: str,
) -> None:
    db: Database
    if database_url.startswith("postgresql://"):
        db = await PostgresDatabase.open(database_url)
    else:
        db = await SqliteDatabase.open(database_url.removeprefix("sqlite:///"))
    try:
        await migrate(db, upto=49)
        e1 = uuid4()
        ids = [str(e1), f"{e1}#dup2", str(_twin(e1, 9)), str(uuid4())]
        async with db.transaction() as tx:
            for seq, event_id in enumerate(ids, 1):
                await tx.execute(
                    "INSERT INTO events (device_id, seq, event_id, type, device_time, "
                    "received_at, payload) VALUES ('door-1', ?, ?, 'event', 't', 't', '{}')",
                    (seq, event_id))
        await migrate(db)
        rows = await db.fetch_all("SELECT id, event_id, event_key, key_collision FROM events "
                                  "ORDER BY id")
    finally:
        await db.close()
    assert [int(r["event_key"]) for r in rows] == [
        event_key(UUID(str(r["event_id"])[:36])) for r in rows]
    assert [int(r["key_collision"]) for r in rows] == [0, int(rows[1]["id"]),
                                                       int(rows[2]["id"]), 0]

"""Ingest's batch writer on each backend (server/ingest/writer.py): what it inserts and
returns, households and seqs, its early commit, and rollback with the transaction."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from server.admin import add_household, register_device
from server.db.base import Database
from server.db.event_key import event_key
from server.ingest.postgres_writer import PostgresBatchWriter
from server.ingest.sqlite_writer import SqliteBatchWriter
from server.ingest.writer import BatchWriter, RecordRows


def _writer(db: Database) -> BatchWriter:
    return PostgresBatchWriter() if db.dialect == "postgresql" else SqliteBatchWriter()


def _row(device: str, seq: int, event_id: Any = None) -> list[Any]:
    event_id = event_id or uuid4()
    return [device, seq, str(event_id), event_key(event_id), "event", "handover", "t", "t",
            "{}", None]


async def _events(db: Database) -> list[tuple[str, int, int | None]]:
    rows = await db.fetch_all("SELECT device_id, seq, household_id FROM events ORDER BY id")
    return [(r["device_id"], int(r["seq"]), r["household_id"]) for r in rows]


async def test_the_writer_returns_exactly_the_rows_it_inserted(db: Database) -> None:
    household = await add_household(db, "张三家", "幸福路 8 号 3-502", worker_id=None)
    await register_device(db, "door-1", household_id=household)
    await register_device(db, "door-2", household_id=None)
    writer = _writer(db)
    async with db.transaction() as tx:
        written = await writer.write(tx, RecordRows(_row("door-1", 1)))
    assert not written.committed
    old = written.inserted[("door-1", 1)]
    taken = uuid4()
    # A conflict with a stored row, a repeat within the batch, another device, a gap.
    rows = RecordRows([*_row("door-1", 1), *_row("door-1", 2, taken), *_row("door-1", 2, taken),
                       *_row("door-2", 1), *_row("door-1", 5)])
    async with db.transaction() as tx:
        # The probe runs after the insert, in the same go.
        written = await writer.write(tx, rows, probe=(
            "SELECT COUNT(*) FROM events WHERE device_id = ?", ("door-1",)))
    inserted = written.inserted
    assert written.probed == [(3,)]
    stored = {(r["device_id"], int(r["seq"])): int(r["id"])
              for r in await db.fetch_all("SELECT device_id, seq, id FROM events")}
    assert inserted == {key: stored[key] for key in [("door-1", 2), ("door-2", 1), ("door-1", 5)]}
    assert old == stored[("door-1", 1)]
    assert await _events(db) == [("door-1", 1, household), ("door-1", 2, household),
                                 ("door-2", 1, None), ("door-1", 5, household)]
    gaps = await db.fetch_all("SELECT device_id, first_seq, last_seq FROM seq_gaps")
    assert [(g["device_id"], g["first_seq"], g["last_seq"]) for g in gaps] == [("door-1", 3, 4)]
    maxima = await db.fetch_all("SELECT device_id, max_seq FROM devices ORDER BY device_id")
    assert [(m["device_id"], m["max_seq"]) for m in maxima] == [("door-1", 5), ("door-2", 1)]


async def test_the_writer_commits_early_only_when_told_and_rolls_back_with_its_transaction(
    db: Database,
) -> None:
    await register_device(db, "door-1", household_id=None)
    writer = _writer(db)

    async def write_then_fail() -> None:
        async with db.transaction() as tx:
            await writer.write(tx, RecordRows(_row("door-1", 1)))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await _events(db) == []
    async with db.transaction() as tx:
        written = await writer.write(tx, RecordRows(_row("door-1", 1)),
                                     done=lambda written: len(written.inserted) == 1)
        # SQLite commits in the writer's own hop; PostgreSQL when the transaction ends.
        assert written.committed == (db.dialect == "sqlite")
        if written.committed:
            with pytest.raises(RuntimeError, match="after this transaction committed"):
                await tx.execute("DELETE FROM events")
    assert list(written.inserted) == [("door-1", 1)]
    assert await _events(db) == [("door-1", 1, None)]
    async with db.transaction() as tx:
        written = await writer.write(tx, RecordRows(_row("door-1", 2)),
                                     done=lambda written: False)
        assert not written.committed
    assert len(await _events(db)) == 2

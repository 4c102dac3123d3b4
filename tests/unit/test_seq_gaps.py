"""Seq gap tracking on the server (through the SQLite batch writer; the PostgreSQL one
runs the same plan, server/ingest/seq_gaps.py, in tests/server/test_batch_writer.py)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.db.connect import open_database
from server.ingest.sqlite_writer import SqliteBatchWriter

record_seqs = SqliteBatchWriter().record_seqs


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated database file that each example copies: migrating once per
    example was most of the property test's time."""
    path = tmp_path_factory.mktemp("seq-gaps") / "template.db"

    async def build() -> None:
        db = await open_database(f"sqlite:///{path}")
        await db.close()

    asyncio.run(build())
    return path


async def _gaps(db: object) -> list[tuple[int, int]]:
    rows = await db.fetch_all(  # type: ignore[attr-defined]
        "SELECT first_seq, last_seq FROM seq_gaps ORDER BY first_seq")
    return [(r["first_seq"], r["last_seq"]) for r in rows]


async def test_gaps_open_shrink_split_and_close(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path / 's.db'}")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO devices (device_id, registered_at) VALUES ('d-1', 'x')")
    async with db.transaction() as tx:
        await record_seqs(tx, {"d-1": [1, 2, 7]})
    assert await _gaps(db) == [(3, 6)]
    async with db.transaction() as tx:
        await record_seqs(tx, {"d-1": [5, 3]})
    assert await _gaps(db) == [(4, 4), (6, 6)]
    async with db.transaction() as tx:
        await record_seqs(tx, {"d-1": [4, 6, 8]})
    assert await _gaps(db) == []
    row = await db.fetch_one("SELECT max_seq FROM devices WHERE device_id = 'd-1'")
    assert row == {"max_seq": 8}
    await db.close()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
async def test_gaps_are_exactly_the_missing_seqs_below_the_highest(
    migrated: Path, data: st.DataObject
) -> None:
    """Any arrival order in any batches (several late records per batch, as with two
    instances sharing the subscription): the gaps are the seqs not yet stored below the
    highest one, as ranges, and none remain once all have arrived."""
    count = data.draw(st.integers(1, 40))
    order = data.draw(st.permutations(range(1, count + 1)))
    cuts = sorted(data.draw(st.sets(st.integers(1, count), max_size=8)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
    folder = tempfile.TemporaryDirectory()
    shutil.copy(migrated, Path(folder.name) / "s.db")
    db = await open_database(f"sqlite:///{Path(folder.name) / 's.db'}")
    try:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO devices (device_id, registered_at) VALUES ('d-1', 'x')")
        seen: set[int] = set()
        for batch in batches:
            if not batch:
                continue
            async with db.transaction() as tx:
                await record_seqs(tx, {"d-1": list(batch)})
            seen.update(batch)
            missing = [s for s in range(1, max(seen)) if s not in seen]
            expected = [(s, s) for s in missing]
            merged: list[tuple[int, int]] = []
            for first, last in expected:
                if merged and merged[-1][1] + 1 == first:
                    merged[-1] = (merged[-1][0], last)
                else:
                    merged.append((first, last))
            assert await _gaps(db) == merged
        assert await _gaps(db) == []
    finally:
        await db.close()
        folder.cleanup()

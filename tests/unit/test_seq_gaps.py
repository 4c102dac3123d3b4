"""Seq gap tracking on the server."""

from __future__ import annotations

from pathlib import Path

from server.db import open_database
from server.seq_gaps import record_seqs


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

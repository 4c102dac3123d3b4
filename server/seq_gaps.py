"""Track missing sequence numbers per device.

Each device numbers its records 1, 2, 3, ... A record arriving with a seq
beyond the highest seen opens a gap (the numbers in between); a late record
inside a gap shrinks or splits it. Open gaps are possible loss, visible to
operators; once everything is delivered, no gap remains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from doorwatch.timeutil import now_ts
from server.db.base import Transaction

__all__ = ["record_seqs"]


async def _fill(tx: Transaction, device_id: str, seq: int) -> None:
    """A record arrived below the device's maximum: take it out of its gap."""
    gap = await tx.fetch_one(
        "SELECT id, first_seq, last_seq FROM seq_gaps "
        "WHERE device_id = ? AND first_seq <= ? AND last_seq >= ?",
        (device_id, seq, seq),
    )
    if gap is None:
        return
    await tx.execute("DELETE FROM seq_gaps WHERE id = ?", (gap["id"],))
    detected = now_ts()
    for first, last in ((gap["first_seq"], seq - 1), (seq + 1, gap["last_seq"])):
        if first <= last:
            await tx.execute(
                "INSERT INTO seq_gaps (device_id, first_seq, last_seq, detected_at) "
                "VALUES (?, ?, ?, ?)",
                (device_id, first, last, detected),
            )


async def record_seqs(tx: Transaction, new_seqs: Mapping[str, Iterable[int]]) -> None:
    """Update gaps and each device's highest seq for newly stored records."""
    if not new_seqs:
        return
    devices = sorted(new_seqs)
    marks = ",".join("?" for _ in devices)
    # Several server instances may store records of one device at once (shared
    # subscription). On PostgreSQL the rows are locked, in a fixed order so two
    # batches cannot deadlock, until commit; SQLite serializes writers anyway.
    lock = " ORDER BY device_id FOR UPDATE" if tx.dialect == "postgresql" else ""
    query = f"SELECT device_id, max_seq FROM devices WHERE device_id IN ({marks}){lock}"  # noqa: S608
    rows = await tx.fetch_all(query, devices)
    highest = {r["device_id"]: int(r["max_seq"]) for r in rows}
    new_gaps: list[tuple[str, int, int, str]] = []
    raised: list[tuple[int, str]] = []
    detected = now_ts()
    for device_id, seqs in new_seqs.items():
        top = highest.get(device_id, 0)
        start = top
        for seq in sorted(seqs):
            if seq > top + 1:
                new_gaps.append((device_id, top + 1, seq - 1, detected))
            if seq > top:
                top = seq
            else:
                await _fill(tx, device_id, seq)
        if top != start:
            raised.append((top, device_id))
    if raised:
        # One statement for the batch: a batch spans up to a thousand devices, and each
        # separate statement is a round trip to SQLite's thread or PostgreSQL's server.
        await tx.executemany("UPDATE devices SET max_seq = ? WHERE device_id = ?", raised)
    if new_gaps:
        await tx.executemany(
            "INSERT INTO seq_gaps (device_id, first_seq, last_seq, detected_at) "
            "VALUES (?, ?, ?, ?)",
            new_gaps,
        )

"""Track missing sequence numbers per device.

Each device numbers its records 1, 2, 3, ... A record arriving with a seq
beyond the highest seen opens a gap (the numbers in between); a late record
inside a gap shrinks or splits it. Open gaps are possible loss, visible to
operators; once everything is delivered, no gap remains.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

from ground.timeutil import now_ts
from server.db.base import Transaction

__all__ = ["record_seqs"]

_INSERT_GAP = ("INSERT INTO seq_gaps (device_id, first_seq, last_seq, detected_at) "
               "VALUES (?, ?, ?, ?)")


async def _fill(tx: Transaction, device_id: str, late: list[int]) -> None:
    """Records arrived below the device's maximum: take them out of their gaps.

    One query for the gaps they fall in, one delete and one insert of what is
    left of them, however many arrived: with several server instances sharing
    the subscription, every other record of a device reaches its instance
    after a higher one (a statement per record made two instances ten times
    slower than one). ``late`` is sorted and distinct.
    """
    gaps = await tx.fetch_all(
        "SELECT id, first_seq, last_seq FROM seq_gaps "
        "WHERE device_id = ? AND first_seq <= ? AND last_seq >= ?",
        (device_id, late[-1], late[0]),
    )
    detected = now_ts()
    emptied: list[tuple[int]] = []
    pieces: list[tuple[str, int, int, str]] = []
    for gap in gaps:
        first, last = int(gap["first_seq"]), int(gap["last_seq"])
        inside = late[bisect_left(late, first) : bisect_right(late, last)]
        if not inside:
            continue
        emptied.append((int(gap["id"]),))
        start = first
        for seq in inside:
            if start < seq:
                pieces.append((device_id, start, seq - 1, detected))
            start = seq + 1
        if start <= last:
            pieces.append((device_id, start, last, detected))
    if emptied:
        await tx.executemany("DELETE FROM seq_gaps WHERE id = ?", emptied)
    if pieces:
        await tx.executemany(_INSERT_GAP, pieces)


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
    rows = await tx.fetch_tuples(("device_id", "max_seq"),
                                 f"FROM devices WHERE device_id IN ({marks}){lock}", devices)
    highest = {device_id: int(max_seq) for device_id, max_seq in rows}
    new_gaps: list[tuple[str, int, int, str]] = []
    raised: list[tuple[str, int]] = []
    detected = now_ts()
    for device_id, seqs in new_seqs.items():
        top = highest.get(device_id, 0)
        start = top
        # Sorted, so the late ones (at or below the stored maximum) come first and
        # cannot fall in a gap this loop opens above it.
        late: list[int] = []
        for seq in sorted(seqs):
            if seq > top + 1:
                new_gaps.append((device_id, top + 1, seq - 1, detected))
            if seq > top:
                top = seq
            else:
                late.append(seq)
        if late:
            await _fill(tx, device_id, late)
        if top != start:
            raised.append((device_id, top))
    if raised:
        # One statement for the batch, not one per device: a batch spans up to a thousand
        # devices, and each statement is a round trip to PostgreSQL's server, or a GIL
        # hand-over on SQLite's thread.
        if tx.dialect == "postgresql":
            # Two arrays: the same statement text whatever the number of devices, so
            # asyncpg prepares it once.
            await tx.execute(
                "UPDATE devices SET max_seq = v.top FROM unnest(?::text[], ?::bigint[]) "
                "AS v(device_id, top) WHERE devices.device_id = v.device_id",
                ([device_id for device_id, _ in raised], [top for _, top in raised]))
        else:
            cases = " ".join("WHEN ? THEN ? " for _ in raised)
            marks = ",".join("?" for _ in raised)
            await tx.execute(
                f"UPDATE devices SET max_seq = CASE device_id {cases}END "  # noqa: S608 - placeholders only
                f"WHERE device_id IN ({marks})",
                [value for device_id, top in raised for value in (device_id, top)]
                + [device_id for device_id, _ in raised])
    if new_gaps:
        await tx.executemany(_INSERT_GAP, new_gaps)

"""Track missing sequence numbers per device: what to write, from what is stored.

Each device numbers its records 1, 2, 3, ... A record arriving with a seq
beyond the highest seen opens a gap (the numbers in between); a late record
inside a gap shrinks or splits it. Open gaps are possible loss, visible to
operators; once everything is delivered, no gap remains.

This module decides; each backend's batch writer (server/ingest/sqlite_writer.py,
server/ingest/postgres_writer.py) reads and writes in its own form, in the
batch's transaction:

1. the devices' stored ``max_seq`` (:func:`highest_from`; on PostgreSQL locked, in a
   fixed order so two instances' batches cannot deadlock, until commit);
2. :func:`plan`: the new gaps, the raised maxima and the late records;
3. per device with late records, the gaps they fall in (``GAPS_HIT``) and
   :func:`split` of those into what is left of them: one query, one delete and
   one insert however many arrived (with several server instances sharing the
   subscription, every other record of a device reaches its instance after a
   higher one; a statement per record made two instances ten times slower);
4. one statement raising the maxima for the whole batch (a batch spans up to
   a thousand devices), and the new gaps.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DELETE_GAP", "GAPS_HIT", "HIGHEST", "INSERT_GAP", "Plan", "highest_from", "plan",
           "split"]

Gap = tuple[str, int, int, str]  # device_id, first_seq, last_seq, detected_at

INSERT_GAP = ("INSERT INTO seq_gaps (device_id, first_seq, last_seq, detected_at) "
              "VALUES (?, ?, ?, ?)")
DELETE_GAP = "DELETE FROM seq_gaps WHERE id = ?"
# (device_id, highest late seq, lowest late seq): the gaps late records may fall in.
GAPS_HIT = ("SELECT id, first_seq, last_seq FROM seq_gaps "
            "WHERE device_id = ? AND first_seq <= ? AND last_seq >= ?")


# The columns the stored maxima are read as, and :func:`highest_from` the rest.
HIGHEST = ("device_id", "max_seq")


def highest_from(devices: int, lock: bool) -> str:
    """``FROM ...`` of the query for ``devices`` ids' maxima (locked for update if ``lock``)."""
    marks = ",".join("?" for _ in range(devices))
    return (f"FROM devices WHERE device_id IN ({marks})"
            + (" ORDER BY device_id FOR UPDATE" if lock else ""))


@dataclass(slots=True)
class Plan:
    """What newly stored records change."""

    new_gaps: list[Gap] = field(default_factory=list)
    raised: list[tuple[str, int]] = field(default_factory=list)  # (device_id, new max_seq)
    late: dict[str, list[int]] = field(default_factory=dict)  # sorted, distinct


def plan(highest: Mapping[str, int], new_seqs: Mapping[str, Iterable[int]],
         detected: str) -> Plan:
    """The gaps opened, the maxima raised and the late records, for ``new_seqs``."""
    out = Plan()
    for device_id, seqs in new_seqs.items():
        top = start = highest.get(device_id, 0)
        # Sorted, so the late ones (at or below the stored maximum) come first and
        # cannot fall in a gap this loop opens above it.
        late: list[int] = []
        for seq in sorted(seqs):
            if seq > top + 1:
                out.new_gaps.append((device_id, top + 1, seq - 1, detected))
            if seq > top:
                top = seq
            else:
                late.append(seq)
        if late:
            out.late[device_id] = late
        if top != start:
            out.raised.append((device_id, top))
    return out


def split(device_id: str, gaps: Sequence[Sequence[Any]], late: list[int],
          detected: str) -> tuple[list[tuple[int]], list[Gap]]:
    """The gaps (id, first, last) that ``late`` records fall in, to delete, and what is
    left of them, to insert."""
    emptied: list[tuple[int]] = []
    pieces: list[Gap] = []
    for gap_id, first_seq, last_seq in gaps:
        first, last = int(first_seq), int(last_seq)
        inside = late[bisect_left(late, first) : bisect_right(late, last)]
        if not inside:
            continue
        emptied.append((int(gap_id),))
        start = first
        for seq in inside:
            if start < seq:
                pieces.append((device_id, start, seq - 1, detected))
            start = seq + 1
        if start <= last:
            pieces.append((device_id, start, last, detected))
    return emptied, pieces

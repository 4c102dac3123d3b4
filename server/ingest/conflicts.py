"""Why a device record did not go into ``events``: a redelivery, or something to record.

The batch insert skips, without failing, every record that collides with a
stored one on ``(device_id, seq)`` or on ``event_id`` (both unique). Nearly
always that is a redelivery: the outbox's byte-identical copy, harmless. The
rest must not vanish silently (issue 17, items 11 and 12); each becomes a row
in ``rejected_messages`` with one of these reasons:

* ``seq N is already stored with event_id X``: the seq is taken by another
  record (a device whose counter went back, or a forged record);
* ``altered copy of stored record seq N (event_id X): differs in kind, ...``:
  same device, seq and event_id, different content;
* ``event_id X is already stored as seq N of device D``: an event_id reused
  under a new seq (or by another device).

This runs only when a batch had such a collision, so the common all-new
batch pays nothing for it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from server.db.base import Transaction
from server.ingest.rejections import Rejection
from server.mqtt.inbound import InboundMessage

__all__ = ["classify_skipped"]

Record = tuple[InboundMessage, dict[str, Any]]


def _differences(sent: bytes, stored: str) -> str | None:
    """None when ``sent`` is the stored record; else the top-level fields that differ."""
    if sent == stored.encode():
        return None
    try:
        new, old = json.loads(sent), json.loads(stored)
    except ValueError:  # cannot happen for validated records; be safe, not silent
        return "payload"
    if new == old:
        return None  # the same record written differently (key order, spaces)
    if not isinstance(new, dict) or not isinstance(old, dict):
        return "payload"
    names = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
    return ", ".join(names)


async def classify_skipped(
    tx: Transaction, records: list[Record], inserted: dict[tuple[str, int], int]
) -> list[Rejection]:
    """The records of a batch that were not inserted and are not redeliveries, with why.

    ``inserted`` maps the (device_id, seq) of every row the batch's insert
    wrote to its id; within a batch the first record of a (device_id, seq)
    is the one written.
    """
    if len(inserted) == len(records):
        return []
    skipped: list[Record] = []
    claimed: set[tuple[str, int]] = set()
    for record in records:
        key = (record[1]["device_id"], record[1]["seq"])
        if key in inserted and key not in claimed:
            claimed.add(key)
        else:
            skipped.append(record)
    wanted: dict[str, set[int]] = defaultdict(set)
    for _, fields in skipped:
        wanted[fields["device_id"]].add(fields["seq"])
    by_seq: dict[tuple[str, int], tuple[str, str]] = {}
    for device_id, seqs in wanted.items():
        marks = ",".join("?" for _ in seqs)
        rows = await tx.fetch_all(
            "SELECT seq, event_id, payload FROM events WHERE device_id = ? "  # noqa: S608 - placeholders only
            f"AND seq IN ({marks})", [device_id, *seqs])
        by_seq.update({(device_id, int(r["seq"])): (str(r["event_id"]), str(r["payload"]))
                       for r in rows})
    orphans = sorted({str(f["event_id"]) for _, f in skipped
                      if (f["device_id"], f["seq"]) not in by_seq})
    by_event_id: dict[str, tuple[str, int]] = {}
    if orphans:
        marks = ",".join("?" for _ in orphans)
        rows = await tx.fetch_all(
            f"SELECT event_id, device_id, seq FROM events WHERE event_id IN ({marks})",  # noqa: S608 - placeholders only
            orphans)
        by_event_id = {str(r["event_id"]): (str(r["device_id"]), int(r["seq"])) for r in rows}
    rejections: list[Rejection] = []
    for message, fields in skipped:
        device_id, seq, event_id = fields["device_id"], fields["seq"], str(fields["event_id"])
        stored = by_seq.get((device_id, seq))
        if stored is not None:
            stored_event_id, stored_payload = stored
            if stored_event_id != event_id:
                reason = f"seq {seq} is already stored with event_id {stored_event_id}"
            else:
                differs = _differences(message.payload, stored_payload)
                if differs is None:
                    continue  # a redelivery
                reason = (f"altered copy of stored record seq {seq} (event_id {event_id}): "
                          f"differs in {differs}")
        elif event_id in by_event_id:
            other_device, other_seq = by_event_id[event_id]
            reason = f"event_id {event_id} is already stored as seq {other_seq}" + (
                "" if other_device == device_id else f" of device {other_device}")
        else:
            reason = "conflicts with a stored record"
        rejections.append((message, reason, device_id))
    return rejections

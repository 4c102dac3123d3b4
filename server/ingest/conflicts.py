"""Why a device record did not go into ``events``: a redelivery, or something to record.

The batch insert skips, without failing, every record that collides with a
stored one on ``(device_id, seq)`` or on its event_id's 64-bit key (both
unique; server/db/event_key.py). Nearly
always that is a redelivery: the outbox's byte-identical copy, harmless. The
rest must not vanish silently (issue 17, items 11 and 12); each becomes a row
in ``rejected_messages`` with one of these reasons:

* ``seq N is already stored with event_id X``: the seq is taken by another
  record (a device whose counter went back, or a forged record);
* ``altered copy of stored record seq N (event_id X): differs in kind, ...``:
  same device, seq and event_id, different content;
* ``event_id X is already stored as seq N of device D``: an event_id reused
  under a new seq (or by another device).

A record whose key a *different* event_id holds is no conflict at all: it is
inserted again with the next ``key_collision`` number for that key.

This runs only when a batch had such a collision, so the common all-new
batch pays nothing for it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from server.db.base import Transaction
from server.db.event_key import event_key
from server.ingest.rejections import Rejection
from server.mqtt.inbound import InboundMessage

__all__ = ["InsertCollided", "classify_skipped"]

Record = tuple[InboundMessage, dict[str, Any]]
# Inserts records with their key_collision numbers; returns (device_id, seq) -> row id
# of those it inserted.
InsertCollided = Callable[
    [Transaction, list[tuple[Record, int]]], Awaitable[dict[tuple[str, int], int]]]
# Rounds of inserting key collisions: more than one only when another server instance
# takes the same number at the same moment (PostgreSQL).
_COLLISION_ROUNDS = 4


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
    tx: Transaction, records: list[Record], inserted: dict[tuple[str, int], int],
    insert_collided: InsertCollided,
) -> list[Rejection]:
    """The records of a batch that were not inserted and are not redeliveries, with why.

    ``inserted`` maps the (device_id, seq) of every row the batch's insert
    wrote to its id; within a batch the first record of a (device_id, seq)
    is the one written. Records that only shared an event_key with another
    event_id are inserted through ``insert_collided`` and added to ``inserted``.
    """
    if len(inserted) == len(records):
        return []
    rejections: list[Rejection] = []
    for _ in range(_COLLISION_ROUNDS):
        found, collided = await _classify(tx, records, inserted)
        rejections.extend(found)
        if not collided:
            return rejections
        inserted.update(await insert_collided(tx, collided))
        records = [record for record, _ in collided]
    found, collided = await _classify(tx, records, inserted)
    rejections.extend(found)
    rejections.extend((message, "event_key collision not resolved", fields["device_id"])
                      for (message, fields), _ in collided)
    return rejections


async def _classify(
    tx: Transaction, records: list[Record], inserted: dict[tuple[str, int], int]
) -> tuple[list[Rejection], list[tuple[Record, int]]]:
    """Rejections among the records not inserted, and those to insert with a
    ``key_collision`` number."""
    skipped: list[Record] = []
    claimed: set[tuple[str, int]] = set()
    for record in records:
        seat = (record[1]["device_id"], record[1]["seq"])
        if seat in inserted and seat not in claimed:
            claimed.add(seat)
        else:
            skipped.append(record)
    if not skipped:
        return [], []
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
    orphan_keys = sorted({event_key(f["event_id"]) for _, f in skipped
                          if (f["device_id"], f["seq"]) not in by_seq})
    # Per key: its stored event_ids -> (device_id, seq), and the highest number taken.
    by_key: dict[int, dict[str, tuple[str, int]]] = defaultdict(dict)
    highest: dict[int, int] = {}
    if orphan_keys:
        marks = ",".join("?" for _ in orphan_keys)
        rows = await tx.fetch_all(
            "SELECT event_key, key_collision, event_id, device_id, seq FROM events "  # noqa: S608 - placeholders only
            f"WHERE event_key IN ({marks})", orphan_keys)
        for r in rows:
            stored_key = int(r["event_key"])
            by_key[stored_key][str(r["event_id"])] = (str(r["device_id"]), int(r["seq"]))
            highest[stored_key] = max(highest.get(stored_key, 0), int(r["key_collision"]))
    rejections: list[Rejection] = []
    collided: list[tuple[Record, int]] = []
    numbers: dict[str, int] = {}  # an event_id's number in this round (copies share it)
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
            rejections.append((message, reason, device_id))
            continue
        key = event_key(fields["event_id"])
        holder = by_key[key].get(event_id)
        if holder is not None:
            other_device, other_seq = holder
            reason = f"event_id {event_id} is already stored as seq {other_seq}" + (
                "" if other_device == device_id else f" of device {other_device}")
            rejections.append((message, reason, device_id))
            continue
        # The key is held by other event_ids only (or by none any more): not a reuse.
        if event_id not in numbers:
            numbers[event_id] = highest[key] = highest.get(key, -1) + 1
        collided.append(((message, fields), numbers[event_id]))
    return rejections, collided

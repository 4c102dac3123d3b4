"""Turn a batch of broker messages into one database transaction.

Per batch: validate every message (anything invalid becomes a row in
``rejected_messages`` with the reason), insert device records with
``ON CONFLICT DO NOTHING`` so redelivery is harmless, track seq gaps, update
device health, run the rules on what is new, and commit. Only after the
commit does the caller acknowledge the messages to the broker.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic_core import to_jsonable_python

from broker.messages import (
    CommandAck,
    DeviceIdMismatchError,
    DeviceMessage,
    Event,
    EventKind,
    Heartbeat,
    Snapshot,
    Status,
    decode_device_message,
    decode_record_fields,
)
from broker.topics import parse_topic
from ground.errors import PayloadError
from ground.logs import get_logger
from ground.timeutil import now_ts, to_ts
from server.config import ServerSettings
from server.db.base import Database, Transaction
from server.db.event_key import event_key
from server.domain.audit import audit
from server.domain.rules import (
    ACTED_ON,
    HANDOVER,
    StoredEvent,
    apply_rules,
    devices_expecting_visits,
    expecting_visits_query,
)
from server.ingest.conflicts import classify_skipped
from server.ingest.postgres_writer import PostgresBatchWriter
from server.ingest.rejections import store_rejected
from server.ingest.snapshot_owner import claim_snapshot
from server.ingest.sqlite_writer import SqliteBatchWriter
from server.ingest.writer import RECORD_COLUMNS, BatchWriter, Inserted, RecordRows, Written
from server.mqtt.inbound import InboundMessage

__all__ = ["BatchResult", "Ingestor", "PreparedBatch"]

log = get_logger(__name__)

# A record whose event_key another event_id holds: stored with its key_collision number
# (household_id stays last, for the writer).
_COLLIDED_COLUMNS = (*RECORD_COLUMNS[:-1], ("key_collision", "bigint"), RECORD_COLUMNS[-1])
# Messages validated between two yields to the event loop: preparing a batch is CPU
# work of several milliseconds, and the previous batch's write on PostgreSQL needs the
# loop for each of its round trips (so the two overlap instead of alternating); the
# figures that chose 32 are in bench/NOTES.md.
_YIELD_EVERY = 32
# Warning lines about rejected messages per batch (reasons with details such as a JSON
# error position differ per message); the rest is summed up in one line.
_REJECTION_LINES_PER_BATCH = 20


@dataclass(slots=True)
class BatchResult:
    """What a batch did, for metrics and tests."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    incidents_opened: list[int] = field(default_factory=list)
    # (device_id, event_id) of the ``commissioning`` events this batch newly stored (set
    # after the commit; server/ingest/commissioning.py answers each with a ping).
    commissioned: list[tuple[str, UUID]] = field(default_factory=list)


def _log_rejected(rejected: list[tuple[InboundMessage, str, str | None]]) -> None:
    """One warning per (device, reason) in a batch, with how many and one topic.

    Every rejected message is kept in ``rejected_messages``; the log says who and
    why without a line per message, which a flood of garbage would turn into
    gigabytes (and which cost a quarter of the rejection path's time).
    """
    groups: dict[tuple[str | None, str], list[InboundMessage]] = {}
    for message, reason, device_id in rejected:
        groups.setdefault((device_id, reason), []).append(message)
    for index, ((device_id, reason), messages) in enumerate(groups.items()):
        if index == _REJECTION_LINES_PER_BATCH:
            rest = sum(len(m) for m in list(groups.values())[index:])
            log.warning("more messages rejected in this batch",
                        extra={"count": rest, "see": "rejected_messages table"})
            return
        log.warning("message rejected", extra={
            "device_id": device_id, "reason": reason, "count": len(messages),
            "topic": messages[0].topic})


# An event or command ack: its message and its validated fields (decode_record_fields).
Record = tuple[InboundMessage, dict[str, Any]]


def _record_values(records: list[Record], stamp: str) -> list[Any]:
    """The records' values in ``RECORD_COLUMNS`` order, flat; households left None.

    ``to_jsonable_python`` writes a UUID's canonical text in Rust, faster than
    ``str(uuid)`` (a Python method), on a path that runs once per event (bench/NOTES.md).
    """
    params: list[Any] = []
    extend = params.extend
    for message, fields in records:
        kind = fields.get("kind")
        event_id = fields["event_id"]
        extend((fields["device_id"], fields["seq"], to_jsonable_python(event_id),
                event_key(event_id), fields["type"], kind.value if kind is not None else None,
                to_ts(fields["time"]),
                message.received_at or stamp, message.payload.decode(), None))
    return params


def _stamped(message: InboundMessage, stamp: str) -> InboundMessage:
    return message if message.received_at else message._replace(received_at=stamp)


@dataclass(slots=True)
class PreparedBatch:
    """A batch validated and sorted by kind, ready to be written."""

    stamp: str
    records: list[Record] = field(default_factory=list)
    heartbeats: dict[str, tuple[InboundMessage, Heartbeat]] = field(default_factory=dict)
    statuses: dict[str, tuple[InboundMessage, Status]] = field(default_factory=dict)
    snapshots: list[tuple[InboundMessage, Snapshot]] = field(default_factory=list)
    rejected: list[tuple[InboundMessage, str, str | None]] = field(default_factory=list)
    # The records' column values, row after row in one flat list, built here so that
    # writing a batch starts with SQL at once; the household slots are filled in the
    # write's transaction.
    record_values: list[Any] = field(default_factory=list)
    # A device speaking for another (payload device_id != topic's): also a security event.
    spoofed: list[DeviceIdMismatchError] = field(default_factory=list)


def _handover(fields: dict[str, Any]) -> bool:
    return fields.get("kind") == HANDOVER and fields.get("report") != "final"


def _acted_on(fields: dict[str, Any], expecting: set[str]) -> bool:
    """Whether the rules (or the commissioning answer) act on this new record.

    Handovers (the commonest episode) matter only to a household expecting a
    registered visit (``expecting``: those devices); an episode's verdict (v2
    report "final") updates its early exit's incident.
    """
    if _handover(fields):
        return fields["device_id"] in expecting
    return fields.get("kind") in ACTED_ON or fields.get("report") == "final"


def _nothing_else(sorted_: PreparedBatch) -> Callable[[Written], bool] | None:
    """When the batch's records and health are all it writes: nothing rejected, no
    snapshot, and (asked after the insert, by the writer) every record new (no
    conflict to sort out) and none for the rules."""
    if sorted_.rejected or sorted_.spoofed or sorted_.snapshots:
        return None
    records = sorted_.records

    def done(written: Written) -> bool:
        # After the insert, where the writer works (SQLite: on its thread), so that the
        # write starts at once rather than after a scan of the batch on the event loop.
        if len(written.inserted) != len(records):
            return False
        expecting = {str(row[0]) for row in written.probed}
        return not any(_acted_on(fields, expecting) for _, fields in records)

    return done


def _health(sorted_: PreparedBatch) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The batch's heartbeats and statuses as statements for the batch writer."""
    also: list[tuple[str, list[tuple[Any, ...]]]] = []
    if sorted_.heartbeats:
        also.append((
            "UPDATE devices SET last_heartbeat_at = ?, last_heartbeat = ? WHERE device_id = ?",
            [(m.received_at, hb.model_dump_json(), dev)
             for dev, (m, hb) in sorted_.heartbeats.items()]))
    if sorted_.statuses:
        also.append((
            "UPDATE devices SET status = ?, status_at = ? WHERE device_id = ? "
            "AND (status IS NULL OR status != ?)",
            # When it first arrived, not st.time: a Last Will carries the time the device
            # *connected* (its payload is fixed then), the offline grace counts from when
            # the broker published it, and the retained copy redelivered on every
            # reconnect must not restart that count.
            [(st.state.value, m.received_at, dev, st.state.value)
             for dev, (m, st) in sorted_.statuses.items()]))
    return also


def _writer_for(db: Database) -> BatchWriter:
    return PostgresBatchWriter() if db.dialect == "postgresql" else SqliteBatchWriter()


class Ingestor:
    """Validates and stores batches of inbound messages."""

    def __init__(self, db: Database, settings: ServerSettings):
        self._db = db
        self._writer = _writer_for(db)
        self._settings = settings
        self._known_devices: set[str] = set()

    async def _refresh_devices(self) -> None:
        rows = await self._db.fetch_all("SELECT device_id FROM devices")
        self._known_devices = {r["device_id"] for r in rows}

    async def _sort(self, batch: list[InboundMessage], stamp: str) -> PreparedBatch:
        out = PreparedBatch(stamp=stamp)
        decoded: list[tuple[InboundMessage, DeviceMessage | dict[str, Any]]] = []
        known = self._known_devices
        unknown = False
        for index, message in enumerate(batch):
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            try:
                info = parse_topic(message.topic)
                # Nearly all traffic: a valid event, validated into a dict (see
                # decode_record_fields); anything else takes the full path.
                fields = decode_record_fields(info, message.payload)
                if fields is not None:
                    decoded.append((message, fields))
                    if info.device_id not in known:
                        unknown = True
                    continue
                model = decode_device_message(info, message.topic, message.payload)
            except PayloadError as exc:
                out.rejected.append((_stamped(message, stamp), exc.reason, exc.device_id))
                if isinstance(exc, DeviceIdMismatchError):
                    out.spoofed.append(exc)
                continue
            decoded.append((message, model))
            if model.device_id not in known:
                unknown = True
        if unknown:
            await self._refresh_devices()  # a device may have been provisioned since
            known = self._known_devices
        # Records (nearly all the traffic) keep their unstamped message: the insert uses
        # ``stamp`` directly, sparing a NamedTuple._replace per event.
        records = out.records
        for message, item in decoded:
            if isinstance(item, dict):
                if item["device_id"] in known:
                    records.append((message, item))
                else:
                    out.rejected.append(
                        (_stamped(message, stamp), "unknown device", item["device_id"]))
            elif item.device_id not in known:
                out.rejected.append((_stamped(message, stamp), "unknown device", item.device_id))
            elif isinstance(item, Event | CommandAck):
                records.append((message, dict(item)))
            elif isinstance(item, Heartbeat):
                out.heartbeats[item.device_id] = (_stamped(message, stamp), item)
            elif isinstance(item, Status):
                out.statuses[item.device_id] = (_stamped(message, stamp), item)
            else:
                out.snapshots.append((_stamped(message, stamp), item))
        out.record_values = _record_values(records, stamp)
        return out

    async def prepare(self, batch: list[InboundMessage]) -> PreparedBatch:
        """Validate and sort ``batch`` (CPU work, no writes): the first half of :meth:`process`.

        The consumer prepares the next batch while the previous one is being
        written, so parsing and SQLite's own work overlap.
        """
        return await self._sort(batch, now_ts())

    async def process(self, batch: list[InboundMessage]) -> BatchResult:
        """Store ``batch`` in one transaction; raise only if the database fails."""
        return await self.store(await self.prepare(batch))

    async def store(self, sorted_: PreparedBatch) -> BatchResult:
        """Write a prepared batch in one transaction; raise only if the database fails.

        The records (and device health) go through the backend's batch writer;
        when nothing else is to be written, that is the whole transaction (on
        SQLite one hop to its thread). Otherwise the rest (rejections, conflicts,
        snapshots, the rules) follows on the event loop in the same transaction.
        """
        result = BatchResult(rejected=len(sorted_.rejected))
        rows = RecordRows(sorted_.record_values, also=_health(sorted_))
        # Which devices expect a registered visit, read in the same go as the insert (its
        # handovers go to the rules only for those).
        probe = expecting_visits_query() if any(
            _handover(fields) for _, fields in sorted_.records) else None
        async with self._db.transaction() as tx:
            written = await self._writer.write(tx, rows, _nothing_else(sorted_), probe)
            inserted = written.inserted
            new_events: list[StoredEvent] = []
            if written.committed:
                result.stored = len(inserted)
            else:
                await self._store_rejected(tx, sorted_.rejected)
                for spoof in sorted_.spoofed:
                    await audit(tx, f"device:{spoof.device_id}", "security.device_id_mismatch",
                                f"device:{spoof.claimed_device_id}",
                                f"{spoof.topic}: {spoof.reason}")
                expecting = None if probe is None else {str(row[0]) for row in written.probed}
                new_events = await self._sort_out(tx, sorted_, inserted, result, expecting)
                await self._store_snapshots(tx, sorted_.snapshots, result)
                result.incidents_opened = await apply_rules(tx, self._settings, new_events)
        result.commissioned = [(e.event.device_id, e.event.event_id) for e in new_events
                               if e.event.kind is EventKind.COMMISSIONING]
        _log_rejected(sorted_.rejected)
        return result

    async def _store_rejected(
        self, tx: Transaction, rejected: list[tuple[InboundMessage, str, str | None]]
    ) -> None:
        await store_rejected(tx, self._settings.ingest, rejected)

    async def _sort_out(
        self, tx: Transaction, sorted_: PreparedBatch, inserted: Inserted, result: BatchResult,
        expecting: set[str] | None,
    ) -> list[StoredEvent]:
        """Record the conflicts among what the writer skipped; the new events the rules
        (or the commissioning answer) act on (``expecting``: the devices expecting a
        registered visit, if already read)."""
        records, stamp = sorted_.records, sorted_.stamp
        if not records:
            return []

        async def insert_collided(tx: Transaction, collided: list[tuple[Record, int]]) -> Inserted:
            values: list[Any] = []
            for record, number in collided:
                row = _record_values([record], stamp)
                values.extend((*row[:-1], number, row[-1]))
            written = await self._writer.write(tx, RecordRows(values, _COLLIDED_COLUMNS))
            return written.inserted

        conflicts = [(_stamped(m, stamp), reason, device_id) for m, reason, device_id
                     in await classify_skipped(tx, records, inserted, insert_collided)]
        result.stored = len(inserted)
        await self._store_rejected(tx, conflicts)
        _log_rejected(conflicts)
        result.rejected += len(conflicts)
        result.duplicates = len(records) - len(inserted) - len(conflicts)
        # Only events the rules (or the commissioning answer) act on go further: the rest
        # (door_open, door_close, handovers outside visits, command acks) are stored and done.
        new_events: list[StoredEvent] = []
        if expecting is None and any(_handover(fields) for _, fields in records):
            expecting = await devices_expecting_visits(tx)
        for _, fields in records:
            if _acted_on(fields, expecting or set()):
                row_id = inserted.pop((fields["device_id"], fields["seq"]), None)
                if row_id is not None:  # popped: a second copy in the batch is not new
                    # The rules work on the model; built for these few events only.
                    new_events.append(StoredEvent(row_id=row_id,
                                                  event=Event.model_validate(fields)))
        return new_events

    async def _store_snapshots(
        self, tx: Transaction, snapshots: list[tuple[InboundMessage, Snapshot]], result: BatchResult
    ) -> None:
        for message, snap in snapshots:
            try:
                jpeg = base64.b64decode(snap.jpeg_b64, validate=True)
            except ValueError:  # binascii.Error, or non-ASCII text that is not base64 at all
                await self._store_rejected(
                    tx, [(message, "snapshot is not base64", snap.device_id)])
                result.rejected += 1
                continue
            allowed, refused = await claim_snapshot(tx, message, snap)
            await self._store_rejected(tx, refused)
            result.rejected += len(refused)
            if not allowed:
                continue
            await tx.execute(
                "INSERT INTO snapshots (event_id, device_id, taken_at, received_at, jpeg) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                (str(snap.event_id), snap.device_id, to_ts(snap.taken_at), now_ts(), jpeg),
            )

    async def reject(self, message: InboundMessage, reason: str) -> bool:
        """Record ``message`` as rejected on its own; return False if even that fails."""
        if not message.received_at:
            message = message._replace(received_at=now_ts())
        try:
            async with self._db.transaction() as tx:
                await self._store_rejected(tx, [(message, reason, None)])
        except Exception:
            log.exception("cannot record a rejected message", extra={"topic": message.topic})
            return False
        log.error("message rejected after a processing failure",
                  extra={"topic": message.topic, "reason": reason})
        return True

"""Turn a batch of broker messages into one database transaction.

Per batch: validate every message (anything invalid becomes a row in
``rejected_messages`` with the reason), insert device records with
``ON CONFLICT DO NOTHING`` so redelivery is harmless, track seq gaps, update
device health, run the rules on what is new, and commit. Only after the
commit does the caller acknowledge the messages to the broker.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

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
)
from broker.topics import parse_topic
from doorwatch.errors import PayloadError
from doorwatch.logs import get_logger
from doorwatch.timeutil import now_ts, to_ts
from server.audit import audit
from server.config import ServerSettings
from server.db.base import Database, Transaction
from server.inbound import InboundMessage
from server.rules import StoredEvent, apply_rules
from server.seq_gaps import record_seqs

__all__ = ["BatchResult", "Ingestor"]

log = get_logger(__name__)

# SQLite and PostgreSQL both allow 32766 bound parameters per statement.
_RECORD_COLUMNS = 8
_ROWS_PER_INSERT = 32766 // _RECORD_COLUMNS


@dataclass(slots=True)
class BatchResult:
    """What a batch did, for metrics and tests."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    incidents_opened: list[int] = field(default_factory=list)
    # (device_id, event_id) of the ``commissioning`` events this batch newly stored (set
    # after the commit; server/commissioning.py answers each with a ping).
    commissioned: list[tuple[str, UUID]] = field(default_factory=list)


@dataclass(slots=True)
class _Sorted:
    records: list[tuple[InboundMessage, Event | CommandAck]] = field(default_factory=list)
    heartbeats: dict[str, tuple[InboundMessage, Heartbeat]] = field(default_factory=dict)
    statuses: dict[str, tuple[InboundMessage, Status]] = field(default_factory=dict)
    snapshots: list[tuple[InboundMessage, Snapshot]] = field(default_factory=list)
    rejected: list[tuple[InboundMessage, str, str | None]] = field(default_factory=list)
    # A device speaking for another (payload device_id != topic's): also a security event.
    spoofed: list[DeviceIdMismatchError] = field(default_factory=list)


class Ingestor:
    """Validates and stores batches of inbound messages."""

    def __init__(self, db: Database, settings: ServerSettings):
        self._db = db
        self._settings = settings
        self._known_devices: set[str] = set()

    async def _refresh_devices(self) -> None:
        rows = await self._db.fetch_all("SELECT device_id FROM devices")
        self._known_devices = {r["device_id"] for r in rows}

    async def _sort(self, batch: list[InboundMessage]) -> _Sorted:
        out = _Sorted()
        decoded: list[tuple[InboundMessage, DeviceMessage]] = []
        for message in batch:
            try:
                info = parse_topic(message.topic)
                model = decode_device_message(info, message.topic, message.payload)
                decoded.append((message, model))
            except PayloadError as exc:
                out.rejected.append((message, exc.reason, exc.device_id))
                if isinstance(exc, DeviceIdMismatchError):
                    out.spoofed.append(exc)
        if any(m.device_id not in self._known_devices for _, m in decoded):
            await self._refresh_devices()  # a device may have been provisioned since
        for message, model in decoded:
            if model.device_id not in self._known_devices:
                out.rejected.append((message, "unknown device", model.device_id))
            elif isinstance(model, Event | CommandAck):
                out.records.append((message, model))
            elif isinstance(model, Heartbeat):
                out.heartbeats[model.device_id] = (message, model)
            elif isinstance(model, Status):
                out.statuses[model.device_id] = (message, model)
            else:
                out.snapshots.append((message, model))
        return out

    async def process(self, batch: list[InboundMessage]) -> BatchResult:
        """Store ``batch`` in one transaction; raise only if the database fails."""
        stamp = now_ts()
        batch = [m if m.received_at else m._replace(received_at=stamp) for m in batch]
        sorted_ = await self._sort(batch)
        result = BatchResult(rejected=len(sorted_.rejected))
        async with self._db.transaction() as tx:
            await self._store_rejected(tx, sorted_.rejected)
            for spoof in sorted_.spoofed:
                await audit(tx, f"device:{spoof.device_id}", "security.device_id_mismatch",
                            f"device:{spoof.claimed_device_id}", f"{spoof.topic}: {spoof.reason}")
            new_events = await self._store_records(tx, sorted_.records, result)
            await self._store_health(tx, sorted_)
            await self._store_snapshots(tx, sorted_.snapshots, result)
            result.incidents_opened = await apply_rules(tx, self._settings, new_events)
        result.commissioned = [(e.event.device_id, e.event.event_id) for e in new_events
                               if e.event.kind is EventKind.COMMISSIONING]
        for message, reason, device_id in sorted_.rejected:
            log.warning(
                "message rejected",
                extra={"topic": message.topic, "device_id": device_id, "reason": reason},
            )
        return result

    async def _store_rejected(
        self, tx: Transaction, rejected: list[tuple[InboundMessage, str, str | None]]
    ) -> None:
        if not rejected:
            return
        keep = self._settings.ingest.max_stored_rejected_bytes
        await tx.executemany(
            "INSERT INTO rejected_messages (received_at, topic, device_id, reason, payload, "
            "payload_size) VALUES (?, ?, ?, ?, ?, ?)",
            [(m.received_at, m.topic, dev, reason, m.payload[:keep], len(m.payload))
             for m, reason, dev in rejected],
        )

    async def _store_records(
        self,
        tx: Transaction,
        records: list[tuple[InboundMessage, Event | CommandAck]],
        result: BatchResult,
    ) -> list[StoredEvent]:
        if not records:
            return []
        inserted: dict[tuple[str, int], int] = {}
        for start in range(0, len(records), _ROWS_PER_INSERT):
            chunk = records[start : start + _ROWS_PER_INSERT]
            values = ",".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
            params: list[object] = []
            for message, model in chunk:
                kind = model.kind.value if isinstance(model, Event) else None
                params += [model.device_id, model.seq, str(model.event_id), model.type, kind,
                           to_ts(model.time), message.received_at, message.payload.decode()]
            rows = await tx.fetch_all(
                "INSERT INTO events (device_id, seq, event_id, type, kind, device_time, "  # noqa: S608 - placeholders only
                f"received_at, payload) VALUES {values} "
                "ON CONFLICT (device_id, seq) DO NOTHING RETURNING id, device_id, seq",
                params,
            )
            inserted.update({(r["device_id"], int(r["seq"])): int(r["id"]) for r in rows})
        result.stored = len(inserted)
        conflicts = await self._reject_reused_seqs(tx, records, inserted)
        result.rejected += conflicts
        result.duplicates = len(records) - len(inserted) - conflicts
        seqs: dict[str, list[int]] = defaultdict(list)
        for device_id, seq in inserted:
            seqs[device_id].append(seq)
        await record_seqs(tx, seqs)
        new_events: list[StoredEvent] = []
        seen: set[tuple[str, int]] = set()
        for _, model in records:
            key = (model.device_id, model.seq)
            if isinstance(model, Event) and key in inserted and key not in seen:
                seen.add(key)
                new_events.append(StoredEvent(row_id=inserted[key], event=model))
        return new_events

    async def _reject_reused_seqs(
        self,
        tx: Transaction,
        records: list[tuple[InboundMessage, Event | CommandAck]],
        inserted: dict[tuple[str, int], int],
    ) -> int:
        """Record as rejected every record whose seq is stored under another event_id.

        A redelivery is the outbox's byte-identical record, so the same event_id. A
        different one for a used seq is a device whose counter went back (a re-flashed
        card) or a forged record: dropping it as a duplicate would lose it silently.
        """
        if len(inserted) == len(records):
            return 0  # the common case: everything was new, nothing to compare
        wanted: dict[str, set[int]] = defaultdict(set)
        for _, model in records:
            wanted[model.device_id].add(model.seq)
        stored: dict[tuple[str, int], str] = {}
        for device_id, seq_set in wanted.items():
            marks = ",".join("?" for _ in seq_set)
            rows = await tx.fetch_all(
                "SELECT seq, event_id FROM events WHERE device_id = ? "  # noqa: S608 - placeholders only
                f"AND seq IN ({marks})", [device_id, *seq_set])
            stored.update({(device_id, int(r["seq"])): str(r["event_id"]) for r in rows})
        reused: list[tuple[InboundMessage, str, str | None]] = []
        for message, model in records:
            existing = stored.get((model.device_id, model.seq))
            if existing is not None and existing != str(model.event_id):
                reason = f"seq {model.seq} is already stored with event_id {existing}"
                reused.append((message, reason, model.device_id))
        await self._store_rejected(tx, reused)
        for message, why, dev in reused:
            log.warning("message rejected",
                        extra={"topic": message.topic, "device_id": dev, "reason": why})
        return len(reused)

    async def _store_health(self, tx: Transaction, sorted_: _Sorted) -> None:
        if sorted_.heartbeats:
            await tx.executemany(
                "UPDATE devices SET last_heartbeat_at = ?, last_heartbeat = ? WHERE device_id = ?",
                [(m.received_at, hb.model_dump_json(), dev)
                 for dev, (m, hb) in sorted_.heartbeats.items()],
            )
        if sorted_.statuses:
            await tx.executemany(
                "UPDATE devices SET status = ?, status_at = ? WHERE device_id = ? "
                "AND (status IS NULL OR status != ?)",
                # When it first arrived, not st.time: a Last Will carries the time the
                # device *connected* (its payload is fixed then), the offline grace counts
                # from when the broker published it, and the retained copy redelivered
                # on every reconnect must not restart that count.
                [(st.state.value, m.received_at, dev, st.state.value)
                 for dev, (m, st) in sorted_.statuses.items()],
            )

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

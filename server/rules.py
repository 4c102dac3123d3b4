"""Rules: which newly stored events become incidents.

Rules run inside the ingest transaction, and only for events stored for the
first time, so a redelivered event can never open a second incident.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.messages import Event, EventKind
from doorwatch.logs import get_logger
from doorwatch.timeutil import to_ts
from server.config import ServerSettings
from server.db.base import Transaction
from server.incidents import IncidentKind, open_or_fold
from server.notify.outbox import queue_incident_notifications

__all__ = ["StoredEvent", "apply_rules"]

log = get_logger(__name__)

# Which event kinds, on an armed household, make which incident (and how bad it is).
_INCIDENT_FOR: dict[EventKind, tuple[IncidentKind, str]] = {
    EventKind.EXIT: (IncidentKind.BREACH, "high"),
    EventKind.DOOR_OPEN_UNVERIFIED: (IncidentKind.POSSIBLE_BREACH, "high"),
}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event just inserted, with its database row id."""

    row_id: int
    event: Event


async def apply_rules(
    tx: Transaction, settings: ServerSettings, events: list[StoredEvent]
) -> list[int]:
    """Open or fold incidents for ``events``; return ids of newly opened incidents."""
    relevant = [e for e in events if e.event.kind in _INCIDENT_FOR]
    if not relevant:
        return []
    opened: list[int] = []
    for stored in relevant:
        event = stored.event
        row = await tx.fetch_one(
            "SELECT d.household_id, h.armed FROM devices d "
            "JOIN households h ON h.id = d.household_id WHERE d.device_id = ?",
            (event.device_id,),
        )
        if row is None or not row["armed"]:
            continue
        kind, severity = _INCIDENT_FOR[event.kind]
        at = to_ts(event.time)
        result = await open_or_fold(
            tx,
            household_id=int(row["household_id"]),
            device_id=event.device_id,
            kind=kind,
            severity=severity,
            event_row_id=stored.row_id,
            at=at,
            fold_window_s=settings.rules.fold_window_s,
        )
        if not result.created:
            continue
        opened.append(result.incident_id)
        queued = await queue_incident_notifications(
            tx,
            incident_id=result.incident_id,
            kind=kind.value,
            household_id=int(row["household_id"]),
            device_id=event.device_id,
            at=at,
            dashboard_url=settings.notify.dashboard_url,
            timezone=settings.notify.timezone,
        )
        log.info(
            "incident opened",
            extra={"device_id": event.device_id, "incident_id": result.incident_id,
                   "kind": kind.value, "notifications": queued},
        )
    return opened

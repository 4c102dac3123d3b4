"""The incident lifecycle as people see it: list, look at, acknowledge, resolve, export.

``open`` -> ``acknowledged`` (who, when) -> ``resolved`` (outcome and note).
Acknowledging (or resolving) clears the escalation and reminder deadlines in
the same statement, so no reminder can go out after it. Every change is one
conditional UPDATE (``WHERE state = ...``): two people clicking at once
cannot both succeed, and the loser gets a clear refusal.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from ground.csvsafe import csv_text
from ground.timeutil import to_ts
from server.clock import Clock, SystemClock
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.common import fetch_required, when
from server.domain.errors import InvalidChangeError
from server.domain.incident_opening import IncidentKind, IncidentOutcome, IncidentState
from server.domain.notification_outbox import NotificationContext, Purpose, queue_closure
from server.notify.privacy import private_url

__all__ = [
    "Incident",
    "IncidentEvent",
    "IncidentFilter",
    "IncidentNotification",
    "acknowledge_incident",
    "export_incidents_csv",
    "get_incident",
    "incident_events",
    "incident_notifications",
    "list_incidents",
    "resolve_incident",
]


class Incident(BaseModel):
    """An incident with its household's name, address and grid."""

    id: int
    household_id: int | None
    household: str | None
    address: str | None
    grid_id: int | None
    grid: str | None
    device_id: str | None
    kind: IncidentKind
    severity: str
    state: IncidentState
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: IncidentOutcome | None
    note: str | None
    detail: str | None
    escalate_at: datetime | None
    escalated_at: datetime | None
    remind_at: datetime | None
    reminders: int
    events: int

    @property
    def response_s(self) -> float | None:
        """Seconds from opening to acknowledgement (None while unacknowledged)."""
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.opened_at).total_seconds()

    @classmethod
    def from_row(cls, row: Row) -> Incident:
        """Build from a row of :data:`_SELECT`."""
        return cls(
            id=int(row["id"]), household_id=_int(row["household_id"]),
            household=row["household"], address=row["address"], grid_id=_int(row["grid_id"]),
            grid=row["grid"], device_id=row["device_id"], kind=IncidentKind(row["kind"]),
            severity=row["severity"], state=IncidentState(row["state"]),
            opened_at=when(row["opened_at"]), updated_at=when(row["updated_at"]),
            acknowledged_at=when(row["acknowledged_at"]), acknowledged_by=row["acknowledged_by"],
            resolved_at=when(row["resolved_at"]), resolved_by=row["resolved_by"],
            outcome=IncidentOutcome(row["outcome"]) if row["outcome"] else None,
            note=row["note"], detail=row["detail"], escalate_at=when(row["escalate_at"]),
            escalated_at=when(row["escalated_at"]), remind_at=when(row["remind_at"]),
            reminders=int(row["reminders"]), events=int(row["events"]),
        )


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


class IncidentFilter(BaseModel):
    """What to list; every field optional. Dates are local days in ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    state: IncidentState | None = None
    kind: IncidentKind | None = None
    grid_id: int | None = None
    household_id: int | None = None
    worker_id: int | None = Field(None, description="Only households of this grid worker")
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    limit: int = Field(500, ge=1, le=100_000)


class IncidentEvent(BaseModel):
    """An event folded into an incident."""

    row_id: int
    device_id: str
    seq: int
    kind: str | None
    device_time: datetime
    received_at: datetime
    has_snapshot: bool


class IncidentNotification(BaseModel):
    """A notification sent (or being sent) about an incident."""

    id: int
    worker_id: int | None
    recipient: str | None
    purpose: str
    url: str = Field(description="Apprise's privacy rendering of the URL (secrets masked)")
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


_SELECT = (
    "SELECT i.*, h.name AS household, h.address, h.grid_id, g.name AS grid, "
    "(SELECT COUNT(*) FROM incident_events ie WHERE ie.incident_id = i.id) AS events "
    "FROM incidents i LEFT JOIN households h ON h.id = i.household_id "
    "LEFT JOIN grids g ON g.id = h.grid_id"
)


async def get_incident(db: Database, incident_id: int) -> Incident:
    """One incident (:class:`NotFoundError` if none)."""
    row = await fetch_required(db, "incident", incident_id, f"{_SELECT} WHERE i.id = ?",
                               (incident_id,))
    return Incident.from_row(row)


async def list_incidents(db: Database, flt: IncidentFilter | None = None) -> list[Incident]:
    """Incidents matching ``flt``, newest first."""
    flt = flt or IncidentFilter()
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    for column, value in (("i.state", flt.state), ("i.kind", flt.kind),
                          ("h.grid_id", flt.grid_id), ("i.household_id", flt.household_id),
                          ("h.worker_id", flt.worker_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value.value if isinstance(value, IncidentState | IncidentKind)
                          else value)
    if flt.opened_from is not None:
        where.append("i.opened_at >= ?")
        params.append(to_ts(flt.opened_from))
    if flt.opened_to is not None:
        where.append("i.opened_at < ?")
        params.append(to_ts(flt.opened_to))
    rows = await db.fetch_all(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY i.opened_at DESC, i.id DESC "
        f"LIMIT {int(flt.limit)}", params,
    )
    return [Incident.from_row(r) for r in rows]


async def acknowledge_incident(
    db: Database, incident_id: int, *, actor: str, clock: Clock | None = None,
    context: NotificationContext | None = None, worker_id: int | None = None,
) -> Incident:
    """open -> acknowledged by ``actor`` now; stops reminders and escalation.

    Everyone who was notified (but ``worker_id``, the one acknowledging, when
    known) is told, in the same transaction; ``context`` says where links point.
    """
    now = to_ts((clock or SystemClock()).now())
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE incidents SET state = ?, acknowledged_at = ?, acknowledged_by = ?, "
            "updated_at = ?, escalate_at = NULL, remind_at = NULL, backup_at = NULL "
            "WHERE id = ? AND state = ?",
            (IncidentState.ACKNOWLEDGED.value, now, actor, now, incident_id,
             IncidentState.OPEN.value),
        )
        if changed != 1:
            await fetch_required(tx, "incident", incident_id,
                                 "SELECT id FROM incidents WHERE id = ?", (incident_id,))
            raise InvalidChangeError("incident", incident_id, "not_open")
        await audit(tx, actor, "incident.ack", f"incident:{incident_id}")
        await queue_closure(tx, incident_id=incident_id, purpose=Purpose.ACKNOWLEDGED,
                            context=context or NotificationContext.default(),
                            skip_worker=worker_id)
    return await get_incident(db, incident_id)


async def resolve_incident(
    db: Database, incident_id: int, *, actor: str, outcome: IncidentOutcome, note: str,
    clock: Clock | None = None, context: NotificationContext | None = None,
    worker_id: int | None = None,
) -> Incident:
    """open/acknowledged -> resolved with an outcome and a note.

    Resolving an unacknowledged incident also acknowledges it (same person,
    same moment) so the response time is defined for every resolved incident.
    Everyone who was notified (but ``worker_id``) is told of the outcome.
    """
    if not note.strip():
        raise InvalidChangeError("incident", incident_id, "note_required")
    now = to_ts((clock or SystemClock()).now())
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE incidents SET state = ?, resolved_at = ?, resolved_by = ?, outcome = ?, "
            "note = ?, updated_at = ?, acknowledged_at = COALESCE(acknowledged_at, ?), "
            "acknowledged_by = COALESCE(acknowledged_by, ?), escalate_at = NULL, "
            "remind_at = NULL, backup_at = NULL WHERE id = ? AND state != ?",
            (IncidentState.RESOLVED.value, now, actor, outcome.value, note.strip(), now, now,
             actor, incident_id, IncidentState.RESOLVED.value),
        )
        if changed != 1:
            await fetch_required(tx, "incident", incident_id,
                                 "SELECT id FROM incidents WHERE id = ?", (incident_id,))
            raise InvalidChangeError("incident", incident_id, "already_resolved")
        await audit(tx, actor, "incident.resolve", f"incident:{incident_id}",
                    f"{outcome.value}: {note.strip()}"[:2000])
        # A grouped incident (a building's outage) is resolved with its members.
        await tx.execute(
            "UPDATE incidents SET state = ?, resolved_at = ?, resolved_by = ?, outcome = ?, "
            "note = ?, updated_at = ?, acknowledged_at = COALESCE(acknowledged_at, ?), "
            "acknowledged_by = COALESCE(acknowledged_by, ?) WHERE group_id = ? AND state != ?",
            (IncidentState.RESOLVED.value, now, actor, outcome.value, note.strip(), now, now,
             actor, incident_id, IncidentState.RESOLVED.value))
        await queue_closure(tx, incident_id=incident_id, purpose=Purpose.RESOLVED,
                            context=context or NotificationContext.default(),
                            skip_worker=worker_id)
    return await get_incident(db, incident_id)


async def incident_events(db: Database, incident_id: int) -> list[IncidentEvent]:
    """The events folded into an incident, in device time order."""
    rows = await db.fetch_all(
        "SELECT e.id, e.device_id, e.seq, e.kind, e.device_time, e.received_at, "
        "s.event_id AS snapshot FROM incident_events ie JOIN events e ON e.id = ie.event_row_id "
        "LEFT JOIN snapshots s ON s.event_id = e.event_id AND s.device_id = e.device_id "
        "WHERE ie.incident_id = ? "
        "ORDER BY e.device_time, e.id", (incident_id,),
    )
    return [IncidentEvent(row_id=int(r["id"]), device_id=r["device_id"], seq=int(r["seq"]),
                          kind=r["kind"], device_time=when(r["device_time"]),
                          received_at=when(r["received_at"]),
                          has_snapshot=r["snapshot"] is not None)
            for r in rows]


async def incident_notifications(db: Database, incident_id: int) -> list[IncidentNotification]:
    """Every notification about an incident (alert, reminders, escalation) with its status."""
    rows = await db.fetch_all(
        "SELECT n.id, n.worker_id, w.name AS recipient, n.purpose, n.url, n.state, n.attempts, "
        "n.last_error, n.created_at, n.delivered_at FROM notifications n "
        "LEFT JOIN workers w ON w.id = n.worker_id WHERE n.incident_id = ? ORDER BY n.id",
        (incident_id,),
    )
    return [IncidentNotification(
        id=int(r["id"]), worker_id=_int(r["worker_id"]), recipient=r["recipient"],
        purpose=r["purpose"], url=private_url(r["url"]), state=r["state"],
        attempts=int(r["attempts"]),
        last_error=r["last_error"], created_at=when(r["created_at"]),
        delivered_at=when(r["delivered_at"])) for r in rows]


_CSV_COLUMNS = [
    "id", "kind", "severity", "state", "household", "address", "grid", "device_id",
    "opened_at", "acknowledged_at", "acknowledged_by", "response_s", "resolved_at",
    "resolved_by", "outcome", "note", "escalated_at", "reminders", "events",
]


def export_incidents_csv(incidents: list[Incident], timezone: str = "UTC") -> str:
    """Incidents as CSV (UTF-8 text; times local to ``timezone``) for supervisors' spreadsheets.

    Written by :func:`ground.csvsafe.csv_text`, the one CSV writer of every
    export, so no cell is run as a spreadsheet formula.
    """
    zone = ZoneInfo(timezone)

    def local(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    return csv_text(_CSV_COLUMNS, ((
        i.id, i.kind.value, i.severity, i.state.value, i.household or "", i.address or "",
        i.grid or "", i.device_id or "", local(i.opened_at), local(i.acknowledged_at),
        i.acknowledged_by or "", "" if i.response_s is None else f"{i.response_s:.0f}",
        local(i.resolved_at), i.resolved_by or "", i.outcome.value if i.outcome else "",
        i.note or "", local(i.escalated_at), i.reminders, i.events,
    ) for i in incidents))

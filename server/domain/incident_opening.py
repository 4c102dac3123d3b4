"""Incidents: opened by rules and timers, folded when a household's events come close together.

This module holds what the *ingest path* needs (kinds, states, opening and
folding inside the caller's transaction); the human side of the lifecycle
(acknowledge, resolve, list, export) is :mod:`server.domain.incidents`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ground.timeutil import from_ts, to_ts, utcnow
from server.config import EscalationSettings
from server.db.base import Transaction
from server.domain.audit import audit

__all__ = [
    "FOLDABLE_KINDS",
    "SEVERITY_OF",
    "IncidentKind",
    "IncidentOutcome",
    "IncidentState",
    "OpenedIncident",
    "Severity",
    "initial_deadlines",
    "open_incident",
    "open_or_fold",
    "take_over",
]


class IncidentKind(StrEnum):
    """Why an incident exists (keys of ``incident.kind.*`` in the catalogue)."""

    BREACH = "breach"
    POSSIBLE_BREACH = "possible_breach"
    OVERDUE_RETURN = "overdue_return"
    VISITOR = "visitor"
    DEVICE_OFFLINE = "device_offline"
    OFFLINE_GROUP = "offline_group"  # many devices of one building or grid at once
    TAMPER = "tamper"
    FEVER = "fever"  # from a daily follow-up (server/domain/followups.py), not from a door
    VISITOR_OVERSTAY = "visitor_overstay"  # a registered visitor still inside (visits.py)
    MISSED_CHECKIN = "missed_checkin"  # a presence check-in nobody answered (checkins.py)


class IncidentState(StrEnum):
    """Lifecycle: open -> acknowledged -> resolved."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentOutcome(StrEnum):
    """How an incident ended (keys of ``incident.outcome.*`` in the catalogue)."""

    CONFIRMED_BREACH = "confirmed_breach"
    FALSE_ALARM = "false_alarm"
    AUTHORISED = "authorised"
    DEVICE_FAULT = "device_fault"


class Severity(StrEnum):
    """How urgent an incident is; ``low`` ones notify but never escalate."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


_RANK = {Severity.LOW.value: 1, Severity.MEDIUM.value: 2, Severity.HIGH.value: 3}

SEVERITY_OF: dict[IncidentKind, Severity] = {
    IncidentKind.BREACH: Severity.HIGH,
    IncidentKind.POSSIBLE_BREACH: Severity.HIGH,
    IncidentKind.OVERDUE_RETURN: Severity.HIGH,
    IncidentKind.TAMPER: Severity.HIGH,
    IncidentKind.DEVICE_OFFLINE: Severity.MEDIUM,
    IncidentKind.OFFLINE_GROUP: Severity.MEDIUM,
    IncidentKind.VISITOR: Severity.LOW,
    IncidentKind.FEVER: Severity.MEDIUM,
    IncidentKind.VISITOR_OVERSTAY: Severity.MEDIUM,
    IncidentKind.MISSED_CHECKIN: Severity.HIGH,
}

# Incidents about what happened at the door, into which later door events fold.
# Device-offline and overdue-return incidents are about something else: a breach
# seen after them must not disappear into them.
FOLDABLE_KINDS: tuple[str, ...] = (
    IncidentKind.BREACH.value,
    IncidentKind.POSSIBLE_BREACH.value,
    IncidentKind.VISITOR.value,
    IncidentKind.TAMPER.value,
)


@dataclass(frozen=True, slots=True)
class OpenedIncident:
    """Result of :func:`open_or_fold`.

    ``created``: a new incident; ``upgraded``: an open one became more severe
    (its kind changed), which is notified like a new one.
    """

    incident_id: int
    created: bool
    upgraded: bool = False


def initial_deadlines(
    severity: str, now: datetime, escalation: EscalationSettings | None
) -> tuple[str | None, str | None]:
    """(escalate_at, remind_at) for a new incident; both None for low severity."""
    if escalation is None or severity not in escalation.escalate_severities:
        return None, None
    return (to_ts(now + timedelta(seconds=escalation.escalate_after_s)),
            to_ts(now + timedelta(seconds=escalation.remind_every_s)))


async def open_incident(
    tx: Transaction,
    *,
    household_id: int,
    device_id: str | None,
    kind: IncidentKind,
    at: str,
    escalation: EscalationSettings | None = None,
    now: datetime | None = None,
    severity: str | None = None,
    detail: str | None = None,
    leave_id: int | None = None,
    event_row_id: int | None = None,
) -> int:
    """Open a new incident with its escalation deadlines; return its id."""
    level = severity or SEVERITY_OF[kind].value
    escalate_at, remind_at = initial_deadlines(level, now or utcnow(), escalation)
    row = await tx.fetch_one(
        "INSERT INTO incidents (household_id, device_id, kind, severity, state, opened_at, "
        "updated_at, escalate_at, remind_at, detail, leave_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (household_id, device_id, kind.value, level, IncidentState.OPEN.value, at, at,
         escalate_at, remind_at, detail, leave_id),
    )
    assert row is not None
    incident_id = int(row["id"])
    await audit(tx, "system", "incident.open", f"incident:{incident_id}",
                f"{kind.value} household:{household_id}" + (f" {detail}" if detail else ""))
    if event_row_id is not None:
        await _attach(tx, incident_id, event_row_id)
    return incident_id


async def _attach(tx: Transaction, incident_id: int, event_row_id: int) -> None:
    await tx.execute(
        "INSERT INTO incident_events (incident_id, event_row_id) VALUES (?, ?) "
        "ON CONFLICT (incident_id, event_row_id) DO NOTHING",
        (incident_id, event_row_id),
    )


async def open_or_fold(
    tx: Transaction,
    *,
    household_id: int,
    device_id: str,
    kind: IncidentKind,
    severity: str,
    event_row_id: int,
    at: str,
    fold_window_s: float,
    escalation: EscalationSettings | None = None,
    now: datetime | None = None,
) -> OpenedIncident:
    """Attach the event to the household's recent unresolved door incident, or open a new one.

    Folding keeps a grid worker from getting five alerts for one person going
    in and out; only a newly opened (or upgraded) incident is notified.
    """
    since = to_ts(from_ts(at) - timedelta(seconds=fold_window_s))
    marks = ",".join("?" for _ in FOLDABLE_KINDS)
    row = await tx.fetch_one(
        "SELECT id, kind, severity, state FROM incidents WHERE household_id = ? "  # noqa: S608
        f"AND state != ? AND opened_at >= ? AND kind IN ({marks}) "
        "ORDER BY opened_at DESC LIMIT 1",
        (household_id, IncidentState.RESOLVED.value, since, *FOLDABLE_KINDS),
    )
    if row is None:
        incident_id = await open_incident(
            tx, household_id=household_id, device_id=device_id, kind=kind, at=at,
            escalation=escalation, now=now, severity=severity, event_row_id=event_row_id)
        return OpenedIncident(incident_id=incident_id, created=True)
    incident_id = int(row["id"])
    upgraded = (row["state"] == IncidentState.OPEN.value
                and _RANK.get(severity, 0) > _RANK.get(row["severity"], 0))
    if upgraded:
        # A visitor incident that turns out to be a breach: say so, and notify again.
        await tx.execute(
            "UPDATE incidents SET kind = ?, severity = ?, updated_at = ? WHERE id = ?",
            (kind.value, severity, at, incident_id))
        escalate_at, remind_at = initial_deadlines(severity, now or utcnow(), escalation)
        await tx.execute(
            "UPDATE incidents SET escalate_at = COALESCE(escalate_at, ?), "
            "remind_at = COALESCE(remind_at, ?) WHERE id = ?",
            (escalate_at, remind_at, incident_id))
        await audit(tx, "system", "incident.upgrade", f"incident:{incident_id}",
                    f"{row['kind']} -> {kind.value}")
    else:
        await tx.execute("UPDATE incidents SET updated_at = ? WHERE id = ? AND updated_at < ?",
                         (at, incident_id, at))
    await _attach(tx, incident_id, event_row_id)
    return OpenedIncident(incident_id=incident_id, created=False, upgraded=upgraded)


async def take_over(
    tx: Transaction,
    *,
    incident_id: int,
    kind: IncidentKind,
    event_row_id: int,
    at: str,
) -> None:
    """Make the unresolved incident ``incident_id`` the ``kind`` incident of the event
    ``event_row_id``: a late exit's breach taking over the missed check-in it explains
    (server/domain/checkins.py, ``take_missed``). Its escalation ladder goes on as it was:
    the worker was already asked about this moment."""
    row = await tx.fetch_one("SELECT kind FROM incidents WHERE id = ?", (incident_id,))
    assert row is not None
    await tx.execute(
        "UPDATE incidents SET kind = ?, severity = ?, updated_at = CASE WHEN updated_at < ? "
        "THEN ? ELSE updated_at END WHERE id = ?",
        (kind.value, SEVERITY_OF[kind].value, at, at, incident_id))
    await audit(tx, "system", "incident.upgrade", f"incident:{incident_id}",
                f"{row['kind']} -> {kind.value}")
    await _attach(tx, incident_id, event_row_id)

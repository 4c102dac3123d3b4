"""Incidents: opened by rules, folded when a household's events come close together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from doorwatch.timeutil import from_ts, to_ts
from server.audit import audit
from server.db.base import Transaction

__all__ = ["IncidentKind", "IncidentState", "OpenedIncident", "open_or_fold"]


class IncidentKind(StrEnum):
    """Why an incident exists (keys of ``incident.kind.*`` in the catalogue)."""

    BREACH = "breach"
    POSSIBLE_BREACH = "possible_breach"
    OVERDUE_RETURN = "overdue_return"
    VISITOR = "visitor"
    DEVICE_OFFLINE = "device_offline"
    TAMPER = "tamper"


class IncidentState(StrEnum):
    """Lifecycle: open -> acknowledged -> resolved."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class OpenedIncident:
    """Result of :func:`open_or_fold`: the incident and whether it is new."""

    incident_id: int
    created: bool


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
) -> OpenedIncident:
    """Attach the event to the household's recent unresolved incident, or open a new one.

    Folding keeps a grid worker from getting five alerts for one person going
    in and out; only a newly opened incident is notified.
    """
    since = to_ts(from_ts(at) - timedelta(seconds=fold_window_s))
    row = await tx.fetch_one(
        "SELECT id FROM incidents WHERE household_id = ? AND state != ? AND opened_at >= ? "
        "ORDER BY opened_at DESC LIMIT 1",
        (household_id, IncidentState.RESOLVED.value, since),
    )
    created = row is None
    if row is None:
        row = await tx.fetch_one(
            "INSERT INTO incidents (household_id, device_id, kind, severity, state, opened_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (household_id, device_id, kind.value, severity, IncidentState.OPEN.value, at, at),
        )
        assert row is not None
        await audit(tx, "system", "incident.open", f"incident:{row['id']}", kind.value)
    else:
        await tx.execute("UPDATE incidents SET updated_at = ? WHERE id = ?", (at, row["id"]))
    incident_id = int(row["id"])
    await tx.execute(
        "INSERT INTO incident_events (incident_id, event_row_id) VALUES (?, ?)",
        (incident_id, event_row_id),
    )
    return OpenedIncident(incident_id=incident_id, created=created)

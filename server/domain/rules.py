"""Rules: which newly stored events become incidents (DESIGN.md, "Event semantics").

Rules run inside the ingest transaction, and only for events stored for the
first time, so a redelivered event can never open a second incident. On a
household that is armed (in quarantine):

* ``exit`` -> breach, unless a permitted leave covers it (then the leave is
  marked *out*; the schedule loop opens an overdue-return incident if nobody
  comes back before the leave ends);
* ``entry`` -> back from a leave or from an earlier exit (no incident), or a
  visitor incident (low severity) when no exit came before it;
* ``door_open_unverified`` -> possible breach (unless on a permitted leave);
* ``tamper`` -> tamper incident.

Events of one household close together fold into its open incident.
Timers (device offline, overdue return, escalation) live in their own loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.messages import Event, EventKind
from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Transaction
from server.domain.episode_reports import crossed_at, early_reported, final_reported, is_final
from server.domain.incident_opening import SEVERITY_OF, IncidentKind, open_or_fold
from server.domain.leaves import LeaveState, active_leave
from server.domain.notification_outbox import NotificationContext, queue_alert

__all__ = ["ACTED_ON", "StoredEvent", "apply_rules"]

log = get_logger(__name__)

_INCIDENT_FOR: dict[EventKind, IncidentKind] = {
    EventKind.EXIT: IncidentKind.BREACH,
    EventKind.DOOR_OPEN_UNVERIFIED: IncidentKind.POSSIBLE_BREACH,
    EventKind.ENTRY: IncidentKind.VISITOR,
    EventKind.TAMPER: IncidentKind.TAMPER,
}

# New events the ingest path hands on (to the rules here, and commissioning events to the
# answer with a ping); everything else is stored and needs nothing more.
ACTED_ON = frozenset(_INCIDENT_FOR) | {EventKind.COMMISSIONING}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event just inserted, with its database row id."""

    row_id: int
    event: Event


async def _lock_households(tx: Transaction, event_row_ids: list[int]) -> None:
    """Serialize rule evaluation per household across server instances.

    With several instances sharing the subscription, two of them may handle
    events of the same household at once; without this, each could miss the
    other's new incident and open a second one instead of folding. A no-op
    UPDATE takes PostgreSQL's row lock until commit (SQLite already has one
    writer); ascending ids keep two instances from deadlocking.
    """
    if not event_row_ids:
        return
    marks = ",".join("?" for _ in event_row_ids)
    rows = await tx.fetch_all(
        f"SELECT DISTINCT household_id FROM events WHERE id IN ({marks}) "  # noqa: S608
        "AND household_id IS NOT NULL ORDER BY household_id", event_row_ids)
    for row in rows:
        await tx.execute("UPDATE households SET armed = armed WHERE id = ?",
                         (row["household_id"],))


async def _exit_on_leave(tx: Transaction, household_id: int, at: str) -> int | None:
    """Mark the permitted leave covering ``at`` as *out*; return its id, or None."""
    leave = await active_leave(tx, household_id, at)
    if leave is None:
        return None
    await tx.execute(
        "UPDATE leaves SET state = ?, exited_at = COALESCE(exited_at, ?) WHERE id = ?",
        (LeaveState.OUT.value, at, leave["id"]),
    )
    return int(leave["id"])


async def _entry_is_return(
    tx: Transaction, household_id: int, stored: StoredEvent, at: str
) -> bool:
    """Whether an entry is somebody coming back (from a leave, or after an earlier exit)."""
    back = await tx.execute(
        "UPDATE leaves SET state = ?, returned_at = ? WHERE household_id = ? AND state IN (?, ?) "
        "AND exited_at <= ?",
        (LeaveState.RETURNED.value, at, household_id, LeaveState.OUT.value,
         LeaveState.OVERDUE.value, at),
    )
    if back:
        return True
    last = await tx.fetch_one(
        "SELECT kind FROM events WHERE household_id = ? AND kind IN (?, ?) AND id != ? "
        "AND device_time <= ? ORDER BY device_time DESC, id DESC LIMIT 1",
        (household_id, EventKind.EXIT.value, EventKind.ENTRY.value, stored.row_id, at),
    )
    return last is not None and last["kind"] == EventKind.EXIT.value


async def _attach_to_recent(
    tx: Transaction, household_id: int, stored: StoredEvent, at: str, window_s: float
) -> None:
    """A return folds into the household's unresolved incident (the worker sees it), if any."""
    since = to_ts(from_ts(at) - timedelta(seconds=window_s))
    row = await tx.fetch_one(
        "SELECT id FROM incidents WHERE household_id = ? AND state != 'resolved' "
        "AND updated_at >= ? ORDER BY opened_at DESC LIMIT 1", (household_id, since),
    )
    if row is not None:
        await tx.execute(
            "INSERT INTO incident_events (incident_id, event_row_id) VALUES (?, ?) "
            "ON CONFLICT (incident_id, event_row_id) DO NOTHING", (row["id"], stored.row_id))


async def apply_rules(
    tx: Transaction, settings: ServerSettings, events: list[StoredEvent],
    clock: Clock | None = None,
) -> list[int]:
    """Open or fold incidents for ``events``; return ids of newly opened incidents."""
    if not events:
        return []
    await _lock_households(tx, [e.row_id for e in events if e.event.kind in _INCIDENT_FOR])
    now = (clock or SystemClock()).now()
    context = NotificationContext.of(settings)
    opened: list[int] = []
    for stored in events:
        event = stored.event
        if is_final(event):
            # An episode's verdict on its early exit: updates that incident, never a new one.
            await final_reported(tx, event, stored.row_id, context)
            continue
        incident_id, created = await _apply_one(tx, settings, stored, context, now)
        if event.report == "early":
            await early_reported(tx, event, stored.row_id, incident_id,
                                 opened=created is not None, context=context)
        if incident_id is not None and created == "opened":
            opened.append(incident_id)
    return opened


async def _apply_one(
    tx: Transaction, settings: ServerSettings, stored: StoredEvent,
    context: NotificationContext, now: datetime,
) -> tuple[int | None, str | None]:
    """The incident ``stored`` went into, and whether it was "opened" or "upgraded" by it."""
    event = stored.event
    if event.kind not in _INCIDENT_FOR:
        return None, None
    row = await tx.fetch_one(
        "SELECT d.household_id, h.armed, h.worker_id FROM devices d "
        "JOIN households h ON h.id = d.household_id WHERE d.device_id = ?",
        (event.device_id,),
    )
    if row is None or not row["armed"]:
        return None, None
    household_id = int(row["household_id"])
    at = to_ts(event.time)
    kind = _INCIDENT_FOR[event.kind]
    if event.kind in (EventKind.EXIT, EventKind.DOOR_OPEN_UNVERIFIED):
        leave_id = await _exit_on_leave(tx, household_id, at)
        if leave_id is not None:
            log.info("exit during a permitted leave",
                     extra={"device_id": event.device_id, "leave_id": leave_id})
            return None, None
    if event.kind is EventKind.ENTRY and await _entry_is_return(tx, household_id, stored, at):
        await _attach_to_recent(tx, household_id, stored, at, settings.rules.fold_window_s)
        return None, None
    result = await open_or_fold(
        tx, household_id=household_id, device_id=event.device_id, kind=kind,
        severity=SEVERITY_OF[kind].value, event_row_id=stored.row_id, at=at,
        fold_window_s=settings.rules.fold_window_s, escalation=settings.escalation, now=now,
    )
    if not (result.created or result.upgraded):
        return result.incident_id, None
    crossed = crossed_at(event)
    if crossed is not None:
        await tx.execute("UPDATE incidents SET crossed_at = ? WHERE id = ?",
                         (crossed, result.incident_id))
    queued = await queue_alert(tx, incident_id=result.incident_id, household_id=household_id,
                               context=context, escalation=settings.escalation, now=now)
    log.info(
        "incident opened" if result.created else "incident upgraded",
        extra={"device_id": event.device_id, "incident_id": result.incident_id,
               "kind": kind.value, "notifications": queued},
    )
    return result.incident_id, "opened" if result.created else "upgraded"

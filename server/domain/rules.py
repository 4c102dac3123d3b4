"""Rules: which newly stored events become incidents (DESIGN.md, "Event semantics").

Rules run inside the ingest transaction, and only for events stored for the
first time, so a redelivered event can never open a second incident. On a
household that is armed (in quarantine):

* ``exit`` -> breach, unless a permitted leave covers it (then the leave is
  marked *out*; the schedule loop opens an overdue-return incident if nobody
  comes back before the leave ends);
* ``entry`` -> back from a leave, a registered visitor coming in (logged
  against the visit as planned: :mod:`server.domain.visits`), back from an
  earlier exit (no incident), or else a visitor incident (low severity);
* ``exit`` while a registered visitor is inside -> the visitor leaving
  (planned, counted); ``handover`` inside a visit window -> planned;
* an ``exit`` that is a breach after an *unregistered* entry carries the
  visitor context (:func:`visitor_context`): how long before the visitor came
  in, and how many came in and went out since the household was last seen
  complete, for its notification and page;
* ``door_open_unverified`` -> possible breach (unless on a permitted leave);
* ``tamper`` -> tamper incident;
* an ``exit`` that is a breach during a presence check-in on its device takes
  that check-in (:func:`server.domain.checkins.link_exit`): one incident for
  one person going out, whose notifications say it was during the check-in;
  an allowed ``exit`` (permitted leave, registered visitor leaving) records
  why on that check-in (:func:`server.domain.checkins.cover_exit`), so it is
  no missed check-in either;
* an ``exit`` that is a breach arriving after its check-in was settled as missed
  (its device was offline and delivers the exit late, with the crossing's time
  inside the check-in) takes over the check-in's own incident, which becomes the
  breach (:func:`server.domain.checkins.take_missed`): still one incident, and
  those already told of the missed check-in are told once that it was somebody
  going out.

Events of one household close together fold into its open incident.
Timers (device offline, overdue return, escalation) live in their own loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.messages import Event, EventKind
from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts, utcnow
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Transaction
from server.domain.checkins import Covered, cover_exit, link_exit, take_missed
from server.domain.common import dumps
from server.domain.episode_reports import crossed_at, early_reported, final_reported, is_final
from server.domain.incident_opening import SEVERITY_OF, IncidentKind, open_or_fold, take_over
from server.domain.leaves import LeaveState, active_leave
from server.domain.notification_outbox import (
    NotificationContext,
    Purpose,
    notified_workers,
    queue_alert,
    queue_notifications,
)
from server.domain.visits import planned_entry, planned_exit, planned_handover

__all__ = ["ACTED_ON", "HANDOVER", "StoredEvent", "apply_rules", "devices_expecting_visits",
           "expecting_visits_query", "visitor_context"]

log = get_logger(__name__)

_INCIDENT_FOR: dict[EventKind, IncidentKind] = {
    EventKind.EXIT: IncidentKind.BREACH,
    EventKind.DOOR_OPEN_UNVERIFIED: IncidentKind.POSSIBLE_BREACH,
    EventKind.ENTRY: IncidentKind.VISITOR,
    EventKind.TAMPER: IncidentKind.TAMPER,
}

# New events the ingest path hands on (to the rules here, and commissioning events to the
# answer with a ping); everything else is stored and needs nothing more.
ACTED_ON = frozenset(_INCIDENT_FOR) | {EventKind.COMMISSIONING, EventKind.HANDOVER}
# Handed on only for devices in :func:`devices_expecting_visits` (server/ingest/ingestor.py).
HANDOVER = EventKind.HANDOVER
# Events that change a household's state here (incidents, leaves, visits).
_HOUSEHOLD_KINDS = frozenset(_INCIDENT_FOR) | {EventKind.HANDOVER}


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


async def _back_from_leave(tx: Transaction, household_id: int, at: str) -> bool:
    """Whether an entry is somebody coming back from a permitted leave (marked returned)."""
    back = await tx.execute(
        "UPDATE leaves SET state = ?, returned_at = ? WHERE household_id = ? AND state IN (?, ?) "
        "AND exited_at <= ?",
        (LeaveState.RETURNED.value, at, household_id, LeaveState.OUT.value,
         LeaveState.OVERDUE.value, at),
    )
    return bool(back)


async def _back_after_exit(
    tx: Transaction, household_id: int, stored: StoredEvent, at: str
) -> bool:
    """Whether an entry follows an exit (a registered visitor's do not count)."""
    last = await tx.fetch_one(
        "SELECT kind FROM events WHERE household_id = ? AND kind IN (?, ?) AND id != ? "
        "AND device_time <= ? AND id NOT IN (SELECT event_row_id FROM visit_events) "
        "ORDER BY device_time DESC, id DESC LIMIT 1",
        (household_id, EventKind.EXIT.value, EventKind.ENTRY.value, stored.row_id, at),
    )
    return last is not None and last["kind"] == EventKind.EXIT.value


# Crossings that did not happen: an episode's verdict (its exit is already counted
# by the early report) and early exits withdrawn as a handover or re-entry.
_NOT_CROSSINGS = (
    "SELECT final_row_id FROM episode_reports WHERE final_row_id IS NOT NULL "
    "UNION SELECT early_row_id FROM episode_reports WHERE early_row_id IS NOT NULL "
    "AND verdict IS NOT NULL AND verdict != 'confirmed'"
)


async def visitor_context(
    tx: Transaction, household_id: int, stored: StoredEvent, at: str
) -> dict[str, object] | None:
    """For an exit: what came in and went out since the household was last seen complete.

    Counting crossings from the start of the quarantine (the household is
    complete then), it was last seen complete after the latest crossing that
    brought ins and outs level. When an unregistered entry came since, the
    camera cannot tell whether the visitor or a resident walked out: the
    worker is told when the visitor came in (seconds before this exit) and
    how many came in and went out since (this exit included). None otherwise.
    """
    household = await tx.fetch_one("SELECT quarantine_start FROM households WHERE id = ?",
                                   (household_id,))
    start = household["quarantine_start"] if household else None
    rows = await tx.fetch_all(
        "SELECT e.id, e.kind, e.device_time, "  # noqa: S608 - fixed fragments
        "(SELECT COUNT(*) FROM visit_events v WHERE v.event_row_id = e.id) AS planned "
        "FROM events e WHERE e.household_id = ? AND e.kind IN (?, ?) AND e.id != ? "
        "AND e.device_time <= ? AND e.device_time >= ? "
        f"AND e.id NOT IN ({_NOT_CROSSINGS}) ORDER BY e.device_time, e.id",
        (household_id, EventKind.EXIT.value, EventKind.ENTRY.value, stored.row_id, at,
         start or ""))
    balance = 0
    complete_at: str | None = start
    since: list[dict[str, object]] = []
    for row in rows:
        balance += 1 if row["kind"] == EventKind.ENTRY.value else -1
        if balance == 0:
            complete_at, since = str(row["device_time"]), []
        else:
            since.append(row)
    unregistered = [r for r in since if r["kind"] == EventKind.ENTRY.value and not r["planned"]]
    if not unregistered:
        return None
    entered = str(unregistered[-1]["device_time"])
    return {
        "entered_s_before": round((from_ts(at) - from_ts(entered)).total_seconds()),
        "came_in": sum(1 for r in since if r["kind"] == EventKind.ENTRY.value),
        "went_out": 1 + sum(1 for r in since if r["kind"] == EventKind.EXIT.value),
        "complete_at": complete_at,
    }


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


def expecting_visits_query() -> tuple[str, tuple[Any, ...]]:
    """The query (rows of one ``device_id``) behind :func:`devices_expecting_visits`.

    Also run by ingest's batch writer right after its insert, in the same go.
    """
    return ("SELECT DISTINCT d.device_id FROM visits v JOIN devices d "
            "ON d.household_id = v.household_id WHERE v.state != 'cancelled' AND v.ends_at > ?",
            (to_ts(utcnow() - timedelta(days=1)),))


async def devices_expecting_visits(tx: Transaction) -> set[str]:
    """Devices whose household has a registered visit not cancelled and not long over.

    The ingest path hands a handover to the rules only for these: a handover
    matters only inside a visit window (checked exactly by the rules), and it
    is the commonest door episode, so the others are stored and done.
    """
    rows = await tx.fetch_all(*expecting_visits_query())
    return {str(r["device_id"]) for r in rows}


async def apply_rules(
    tx: Transaction, settings: ServerSettings, events: list[StoredEvent],
    clock: Clock | None = None,
) -> list[int]:
    """Open or fold incidents for ``events``; return ids of newly opened incidents."""
    if not events:
        return []
    await _lock_households(tx, [e.row_id for e in events if e.event.kind in _HOUSEHOLD_KINDS])
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


async def _allowed_exit(tx: Transaction, settings: ServerSettings, event: Event, at: str,
                        context: Covered) -> None:
    """An exit that opens no breach: the check-in in progress, if any, is told why."""
    if event.kind is not EventKind.EXIT:
        return  # an unjudged door opening is no passage out: no check-in said ``left``
    checkin = await cover_exit(tx, device_id=event.device_id, crossed=crossed_at(event) or at,
                               grace_s=settings.checkins.answer_grace_s, context=context)
    if checkin is not None:
        log.info("allowed exit during a check-in",
                 extra={"device_id": event.device_id, "checkin_id": checkin,
                        "context": context})


async def _apply_one(
    tx: Transaction, settings: ServerSettings, stored: StoredEvent,
    context: NotificationContext, now: datetime,
) -> tuple[int | None, str | None]:
    """The incident ``stored`` went into, and whether it was "opened" or "upgraded" by it."""
    event = stored.event
    if event.kind not in _HOUSEHOLD_KINDS:
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
    if event.kind is EventKind.HANDOVER:
        visit = await planned_handover(tx, household_id, stored.row_id, at)
        if visit is not None:
            log.info("handover during a registered visit",
                     extra={"device_id": event.device_id, "visit_id": visit})
        return None, None
    kind = _INCIDENT_FOR[event.kind]
    if event.kind in (EventKind.EXIT, EventKind.DOOR_OPEN_UNVERIFIED):
        leave_id = await _exit_on_leave(tx, household_id, at)
        if leave_id is not None:
            log.info("exit during a permitted leave",
                     extra={"device_id": event.device_id, "leave_id": leave_id})
            await _allowed_exit(tx, settings, event, at, "leave")
            return None, None
    if event.kind is EventKind.EXIT:
        visit = await planned_exit(tx, household_id, stored.row_id, at)
        if visit is not None:
            log.info("registered visitor left",
                     extra={"device_id": event.device_id, "visit_id": visit})
            await _allowed_exit(tx, settings, event, at, "visit")
            return None, None
    if event.kind is EventKind.ENTRY:
        if await _back_from_leave(tx, household_id, at):
            await _attach_to_recent(tx, household_id, stored, at, settings.rules.fold_window_s)
            return None, None
        visit = await planned_entry(tx, household_id, stored.row_id, at)
        if visit is not None:
            log.info("registered visitor came in",
                     extra={"device_id": event.device_id, "visit_id": visit})
            return None, None
        if await _back_after_exit(tx, household_id, stored, at):
            await _attach_to_recent(tx, household_id, stored, at, settings.rules.fold_window_s)
            return None, None
    crossed = crossed_at(event)
    if kind is IncidentKind.BREACH:
        missed = await take_missed(tx, device_id=event.device_id, crossed=crossed or at,
                                   grace_s=settings.checkins.answer_grace_s, at=to_ts(now))
        if missed is not None:
            await _breach_after_missed(tx, stored, household_id, missed, crossed or at,
                                       context, settings, now)
            return missed, "upgraded"
    result = await open_or_fold(
        tx, household_id=household_id, device_id=event.device_id, kind=kind,
        severity=SEVERITY_OF[kind].value, event_row_id=stored.row_id, at=at,
        fold_window_s=settings.rules.fold_window_s, escalation=settings.escalation, now=now,
    )
    if kind is IncidentKind.BREACH:
        # Before the alert is queued, so that it says so.
        await link_exit(tx, device_id=event.device_id, crossed=crossed or at,
                        incident_id=result.incident_id,
                        grace_s=settings.checkins.answer_grace_s)
    if not (result.created or result.upgraded):
        return result.incident_id, None
    if crossed is not None:
        await tx.execute("UPDATE incidents SET crossed_at = ? WHERE id = ?",
                         (crossed, result.incident_id))
    if kind is IncidentKind.BREACH:
        context_of_exit = await visitor_context(tx, household_id, stored, at)
        if context_of_exit is not None:
            await tx.execute("UPDATE incidents SET visitor_context = ? WHERE id = ?",
                             (dumps(context_of_exit), result.incident_id))
    queued = await queue_alert(tx, incident_id=result.incident_id, household_id=household_id,
                               context=context, escalation=settings.escalation, now=now)
    log.info(
        "incident opened" if result.created else "incident upgraded",
        extra={"device_id": event.device_id, "incident_id": result.incident_id,
               "kind": kind.value, "notifications": queued},
    )
    return result.incident_id, "opened" if result.created else "upgraded"


async def _breach_after_missed(
    tx: Transaction, stored: StoredEvent, household_id: int, incident_id: int, crossed: str,
    context: NotificationContext, settings: ServerSettings, now: datetime,
) -> None:
    """The late exit ``stored`` takes over the missed check-in's incident ``incident_id``.

    Everyone already asked about that incident hears once that it is a breach during the
    check-in (the alert says the earlier missed-check-in alert was the same event); the
    escalation ladder goes on as it was. When nobody was asked (no responder on shift, a
    silence), it is alerted as any breach would be.
    """
    at = to_ts(stored.event.time)
    await take_over(tx, incident_id=incident_id, kind=IncidentKind.BREACH,
                    event_row_id=stored.row_id, at=at)
    await tx.execute("UPDATE incidents SET crossed_at = ? WHERE id = ?", (crossed, incident_id))
    context_of_exit = await visitor_context(tx, household_id, stored, at)
    if context_of_exit is not None:
        await tx.execute("UPDATE incidents SET visitor_context = ? WHERE id = ?",
                         (dumps(context_of_exit), incident_id))
    told = await notified_workers(tx, incident_id)
    if told:
        queued = await queue_notifications(tx, incident_id=incident_id, recipients=told,
                                           purpose=Purpose.ALERT, context=context)
    else:
        queued = await queue_alert(tx, incident_id=incident_id, household_id=household_id,
                                   context=context, escalation=settings.escalation, now=now)
    log.info("late exit took over a missed check-in",
             extra={"device_id": stored.event.device_id, "incident_id": incident_id,
                    "notifications": queued})

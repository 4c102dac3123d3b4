"""Early exits and their verdicts (wire v2): one incident per door episode.

A device reports an exit while the door may still be open (``report =
'early'``); the rules open (or fold into) the household's breach incident and
notify at once, as for any exit. When the episode ends the device sends its
verdict (``report = 'final'``, same ``episode_id``), which only *updates*
that incident: confirmed (audited, nobody is disturbed again) or withdrawn as
a handover or a re-entry (audited; the incident drops to low severity, stops
escalating and everyone notified of it is told; a presence check-in it took is
withdrawn with it, :func:`server.domain.checkins.withdraw_exit`). The verdict never goes
through the exit rule, so it cannot open a second breach.

``episode_reports`` holds both halves, whichever arrives first (a redelivery
after a restart may reorder them); everything runs inside the ingest
transaction, so a crash between the two halves loses and doubles nothing.
A withdrawn incident is not resolved by the system: the worker, who was
alerted, closes it after looking at the evidence (a camera's false in-passage
must not silently cancel a real breach).
"""

from __future__ import annotations

from datetime import timedelta

from broker.messages import Event, EventKind
from ground.logs import get_logger
from ground.timeutil import to_ts, utcnow
from server.db.base import Transaction
from server.domain.audit import audit
from server.domain.checkins import withdraw_exit
from server.domain.incident_opening import IncidentState, Severity
from server.domain.notification_outbox import NotificationContext, Purpose, queue_notifications

__all__ = ["crossed_at", "early_reported", "final_reported", "is_final"]

log = get_logger(__name__)


def is_final(event: Event) -> bool:
    """Whether ``event`` is an episode's verdict on an exit it reported early."""
    return event.report == "final"


def crossed_at(event: Event) -> str | None:
    """When the person crossed the threshold going out, from the event's episode, or None."""
    episode = event.episode
    if episode is None or event.kind is not EventKind.EXIT:
        return None
    outs = [p.t for p in episode.passages if p.direction == "out"]
    if not outs:
        return None
    return to_ts(episode.started_at + timedelta(seconds=min(outs)))


async def early_reported(
    tx: Transaction, event: Event, row_id: int, incident_id: int | None, *, opened: bool,
    context: NotificationContext,
) -> None:
    """Record the early half; apply a verdict that arrived before it, if any."""
    assert event.episode_id is not None
    await tx.execute(
        "INSERT INTO episode_reports (device_id, episode_id, incident_id, opened, early_row_id) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, episode_id) DO UPDATE SET "
        "incident_id = excluded.incident_id, opened = excluded.opened, "
        "early_row_id = excluded.early_row_id",
        (event.device_id, str(event.episode_id), incident_id, int(opened), row_id))
    row = await tx.fetch_one(
        "SELECT final_row_id, verdict, detail FROM episode_reports "
        "WHERE device_id = ? AND episode_id = ?", (event.device_id, str(event.episode_id)))
    if row is not None and row["verdict"] is not None and incident_id is not None:
        await _apply(tx, incident_id, opened=opened, verdict=row["verdict"],
                     detail=row["detail"], final_row_id=row["final_row_id"], context=context)


async def final_reported(
    tx: Transaction, event: Event, row_id: int, context: NotificationContext
) -> None:
    """Apply an episode's verdict to the incident its early report opened."""
    assert event.episode_id is not None
    assert event.verdict is not None
    await tx.execute(
        "INSERT INTO episode_reports (device_id, episode_id, final_row_id, verdict, detail) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, episode_id) DO UPDATE SET "
        "final_row_id = excluded.final_row_id, verdict = excluded.verdict, "
        "detail = excluded.detail",
        (event.device_id, str(event.episode_id), row_id, event.verdict, event.detail))
    row = await tx.fetch_one(
        "SELECT incident_id, opened, early_row_id FROM episode_reports "
        "WHERE device_id = ? AND episode_id = ?", (event.device_id, str(event.episode_id)))
    if row is None or row["early_row_id"] is None:
        # The early half has not arrived yet: it applies this verdict when it does.
        log.info("episode verdict before its early report",
                 extra={"device_id": event.device_id, "episode": str(event.episode_id)})
        return
    if row["incident_id"] is None:
        return  # the early exit opened no incident (disarmed, on a permitted leave)
    await _apply(tx, int(row["incident_id"]), opened=bool(row["opened"]),
                 verdict=event.verdict, detail=event.detail, final_row_id=row_id,
                 context=context)


async def _apply(
    tx: Transaction, incident_id: int, *, opened: bool, verdict: str, detail: str | None,
    final_row_id: int | None, context: NotificationContext,
) -> None:
    if final_row_id is not None:
        await tx.execute(
            "INSERT INTO incident_events (incident_id, event_row_id) VALUES (?, ?) "
            "ON CONFLICT (incident_id, event_row_id) DO NOTHING", (incident_id, final_row_id))
    subject = f"incident:{incident_id}"
    if verdict == "confirmed":
        await tx.execute("UPDATE incidents SET verdict = ? WHERE id = ? AND verdict IS NULL",
                         (verdict, incident_id))
        await audit(tx, "system", "incident.confirm", subject, verdict)
        return
    if not opened:
        # The early exit folded into an incident about something else as well: the
        # verdict on this one exit is noted, the incident stands.
        await audit(tx, "system", "incident.withdraw_noted", subject, verdict)
        return
    changed = await tx.execute(
        "UPDATE incidents SET verdict = ?, severity = ?, escalate_at = NULL, remind_at = NULL, "
        "backup_at = NULL, updated_at = ? WHERE id = ? AND state != ? AND verdict IS NULL",
        (verdict, Severity.LOW.value, to_ts(utcnow()), incident_id,
         IncidentState.RESOLVED.value))
    if not changed:
        return
    await audit(tx, "system", "incident.withdraw", subject,
                verdict + (f": {detail}" if detail else ""))
    await withdraw_exit(tx, incident_id, verdict)  # before the notifications, which say so
    notified = await tx.fetch_all(
        "SELECT DISTINCT worker_id FROM notifications WHERE incident_id = ? "
        "AND worker_id IS NOT NULL ORDER BY worker_id", (incident_id,))
    queued = await queue_notifications(
        tx, incident_id=incident_id, recipients=[int(r["worker_id"]) for r in notified],
        purpose=Purpose.WITHDRAWN, context=context)
    log.info("early exit withdrawn", extra={"incident_id": incident_id, "verdict": verdict,
                                           "notifications": queued})

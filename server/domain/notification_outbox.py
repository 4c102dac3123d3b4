"""Queue notifications inside the transaction that made them necessary.

Writing the notification rows in the same transaction as the incident (or
the escalation deadline it advances) means a crash can never leave an
incident nobody will be told about, nor tell anybody twice. Text comes from
the catalogue in each recipient's own language, with the household's
address, the local time, the kind of incident and a link to its page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ground.i18n import label, t
from ground.timeutil import from_ts, now_ts, to_ts, utcnow
from server.config import EscalationSettings, NotifySettings, ServerSettings
from server.db.base import Transaction
from server.domain.ack_links import ack_secret, new_ack_link
from server.domain.audit import audit
from server.domain.checkins import checkin_during, during_checkin_text
from server.domain.common import loads_dict, loads_list
from server.domain.roster import first_responders
from server.domain.silences import silence_for_incident

__all__ = [
    "NotificationContext",
    "Purpose",
    "notified_workers",
    "queue_alert",
    "queue_closure",
    "queue_incident_notifications",
    "queue_notifications",
    "supervisors_for",
    "visitor_context_text",
]


class Purpose(StrEnum):
    """Why a notification is sent (the catalogue has a title/body per purpose)."""

    ALERT = "alert"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    BACKUP = "backup"
    WITHDRAWN = "withdrawn"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Purposes that make their recipient one of "everyone who was notified", who is
# then told when the incident is acknowledged and when it is resolved.
ASKED = ("alert", "reminder", "escalation", "backup")


@dataclass(frozen=True, slots=True)
class NotificationContext:
    """Where links point, which time zone times are shown in, how long ack links live."""

    dashboard_url: str
    timezone: str
    ack_lifetime_s: float = 12 * 3600

    @staticmethod
    def of(settings: ServerSettings) -> NotificationContext:
        """The context the server's settings describe."""
        return NotificationContext(settings.notify.dashboard_url, settings.notify.timezone,
                                   settings.notify.ack_link_lifetime_s)

    @staticmethod
    def default() -> NotificationContext:
        """The context of the default settings (for callers given none)."""
        notify = NotifySettings()
        return NotificationContext(notify.dashboard_url, notify.timezone,
                                   notify.ack_link_lifetime_s)


_KEYS = {
    Purpose.ALERT: ("notify.title", "notify.body"),
    Purpose.REMINDER: ("notify.reminder.title", "notify.reminder.body"),
    Purpose.ESCALATION: ("notify.escalation.title", "notify.escalation.body"),
    Purpose.BACKUP: ("notify.backup.title", "notify.backup.body"),
    Purpose.WITHDRAWN: ("notify.withdrawn.title", "notify.withdrawn.body"),
    Purpose.ACKNOWLEDGED: ("notify.acknowledged.title", "notify.acknowledged.body"),
    Purpose.RESOLVED: ("notify.resolved.title", "notify.resolved.body"),
}


# An alert about something other than a door crossing has its own wording.
_ALERT_KEYS_OF_KIND = {
    "fever": ("notify.fever.title", "notify.fever.body"),
    "visitor_overstay": ("notify.visitor_overstay.title", "notify.visitor_overstay.body"),
    "missed_checkin": ("notify.missed_checkin.title", "notify.missed_checkin.body"),
    "offline_group": ("notify.offline_group.title", "notify.offline_group.body"),
}

_ASKS_FOR_ACK = frozenset({Purpose.ALERT, Purpose.REMINDER, Purpose.ESCALATION, Purpose.BACKUP})


async def queue_notifications(
    tx: Transaction,
    *,
    incident_id: int,
    recipients: list[int],
    purpose: Purpose,
    context: NotificationContext,
    delay_s: float = 0.0,
) -> int:
    """Queue one notification per Apprise URL of each recipient; return how many.

    ``delay_s``: the notifications become due that much later.
    """
    incident = await tx.fetch_one(
        "SELECT i.kind, i.device_id, i.opened_at, i.crossed_at, i.verdict, i.reminders, "
        "i.detail, i.visitor_context, "
        "i.acknowledged_by, i.resolved_by, i.outcome, i.note, "
        "h.name AS household, h.address, COALESCE(r.name, w.name) AS worker FROM incidents i "
        "JOIN households h ON h.id = i.household_id LEFT JOIN workers w ON w.id = h.worker_id "
        "LEFT JOIN workers r ON r.id = i.responder_id "
        "WHERE i.id = ?", (incident_id,),
    )
    if incident is None or not recipients:
        return 0
    marks = ",".join("?" for _ in recipients)
    people = await tx.fetch_all(
        f"SELECT id, language, apprise_urls FROM workers WHERE id IN ({marks}) "  # noqa: S608
        "AND active = 1", recipients,
    )
    people.sort(key=lambda p: recipients.index(int(p["id"])))  # in the order given
    # When the person crossed the threshold, where the device said so: an incident opened
    # later (a visitor upgraded to a breach, a backlog after a network cut) must not
    # tell the worker a later time.
    moment = incident["crossed_at"] or incident["opened_at"]
    local = (from_ts(moment).astimezone(ZoneInfo(context.timezone))
             .strftime("%Y-%m-%d %H:%M:%S"))
    link = f"{context.dashboard_url.rstrip('/')}/incidents/{incident_id}"
    title_key, body_key = _KEYS[purpose]
    if purpose is Purpose.ALERT:
        title_key, body_key = _ALERT_KEYS_OF_KIND.get(incident["kind"], (title_key, body_key))
    place, devices = "-", "-"
    if incident["kind"] == "offline_group":
        place, devices = await _group_place(tx, incident_id)
    created = now_ts()
    due = to_ts(from_ts(created) + timedelta(seconds=delay_s)) if delay_s else created
    # Alerts, reminders and escalations ask for an acknowledgement: each recipient gets a
    # link of their own (acknowledging as them); a withdrawal asks for nothing.
    secret = await ack_secret(tx) if purpose in _ASKS_FOR_ACK else None
    # Somebody went out during a presence check-in: this incident is the check-in's too
    # (or was: a withdrawal says the check-in is withdrawn with it).
    checkin_asked = (await checkin_during(tx, incident_id, incident["kind"])
                     if purpose in _ASKS_FOR_ACK or purpose is Purpose.WITHDRAWN else None)
    rows = []
    for person in people:
        language = person["language"]
        ack = "-"
        if secret is not None:
            token = await new_ack_link(tx, incident_id=incident_id, worker_id=int(person["id"]),
                                       lifetime_s=context.ack_lifetime_s, secret=secret)
            ack = f"{context.dashboard_url.rstrip('/')}/a/{token}"
        values = {
            "kind": t(f"incident.kind.{incident['kind']}", language),
            "household": incident["household"],
            "address": incident["address"],
            "time": local,
            "device": incident["device_id"] or "-",
            "link": link,
            "worker": incident["worker"] or "-",
            "count": int(incident["reminders"]),  # already counts the reminder being sent
            "ack_link": ack,
            "detail": incident["detail"] or "-",
            # A missed check-in's detail is its outcome: said in words, not as the code.
            "checkin": (label("checkin.outcome", incident["detail"], language)
                        if incident["kind"] == "missed_checkin" else "-"),
            "verdict": (t(f"incident.verdict.{incident['verdict']}", language)
                        if incident["verdict"] else "-"),
            "actor": (incident["resolved_by"] if purpose is Purpose.RESOLVED
                      else incident["acknowledged_by"]) or "-",
            "outcome": (t(f"incident.outcome.{incident['outcome']}", language)
                        if incident["outcome"] else "-"),
            "note": incident["note"] or "-",
            "place": place,
            "devices": devices,
        }
        title, body = t(title_key, language, **values), t(body_key, language, **values)
        if incident["visitor_context"] and purpose in _ASKS_FOR_ACK:
            body += "\n" + visitor_context_text(incident["visitor_context"], language,
                                                context.timezone)
        if checkin_asked is not None:
            body += "\n" + during_checkin_text(checkin_asked, language, context.timezone)
        rows += [(incident_id, int(person["id"]), url, title, body, due, created,
                  purpose.value) for url in loads_list(person["apprise_urls"])]
    await tx.executemany(
        "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, attempts, "
        "next_attempt_at, created_at, purpose) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        rows,
    )
    return len(rows)


async def _group_place(tx: Transaction, incident_id: int) -> tuple[str, str]:
    """(building or grid name, "N: device, device, ...") of a grouped offline incident."""
    row = await tx.fetch_one("SELECT group_key FROM incidents WHERE id = ?", (incident_id,))
    key = str(row["group_key"] or "") if row else ""
    by, _, name = key.partition(":")
    if by == "grid" and name.isdigit():
        grid = await tx.fetch_one("SELECT name FROM grids WHERE id = ?", (int(name),))
        name = str(grid["name"]) if grid else name
    members = await tx.fetch_all("SELECT device_id FROM incidents WHERE group_id = ? "
                                 "ORDER BY id", (incident_id,))
    shown = [str(m["device_id"]) for m in members]
    listed = ", ".join(shown[:20]) + (" …" if len(shown) > 20 else "")
    return name or "-", f"{len(shown)}: {listed}"


async def queue_alert(
    tx: Transaction,
    *,
    incident_id: int,
    household_id: int,
    context: NotificationContext,
    escalation: EscalationSettings | None = None,
    now: datetime | None = None,
    delay_s: float = 0.0,
) -> int:
    """Queue an incident's first alert to its first responder by the duty roster.

    A household silence covering the incident's kind (:mod:`server.domain.silences`)
    queues nothing and marks the incident silenced. ``delay_s`` holds the alert
    back (device-offline alerts wait for a storm to form, see
    :mod:`server.domain.storms`).

    The roster (:func:`server.domain.roster.first_responders`) picks the
    household's assigned worker when on shift, else the grid's on-duty worker;
    the responder and the shift's backup are stored on the incident, and, when
    the incident escalates at all, ``backup_at`` is set so the escalation job
    tells the backup if nobody has acknowledged by then.
    """
    moment = now or utcnow()
    incident = await tx.fetch_one("SELECT kind FROM incidents WHERE id = ?", (incident_id,))
    silence = (None if incident is None else
               await silence_for_incident(tx, household_id, str(incident["kind"]), to_ts(moment)))
    if silence is not None:
        # Recorded, shown, never sent: and so never reminded or escalated either.
        await tx.execute(
            "UPDATE incidents SET silence_id = ?, escalate_at = NULL, remind_at = NULL, "
            "backup_at = NULL WHERE id = ?", (silence["id"], incident_id))
        await audit(tx, "system", "incident.silenced", f"incident:{incident_id}",
                    f"silence:{silence['id']} until {silence['ends_at']}: {silence['reason']}")
        return 0
    who = await first_responders(tx, household_id, moment, context.timezone)
    backup_at = None
    if who.backup is not None and escalation is not None:
        backup_at = to_ts(moment + timedelta(seconds=escalation.backup_after_s))
    await tx.execute(
        "UPDATE incidents SET responder_id = ?, backup_id = ?, backup_at = CASE WHEN "
        "escalate_at IS NULL AND remind_at IS NULL THEN NULL ELSE ? END WHERE id = ?",
        (who.responder, who.backup, backup_at, incident_id))
    if who.responder is None:
        return 0
    return await queue_notifications(tx, incident_id=incident_id, recipients=[who.responder],
                                     purpose=Purpose.ALERT, context=context, delay_s=delay_s)


async def notified_workers(tx: Transaction, incident_id: int) -> list[int]:
    """Everyone asked to respond to an incident (alert, reminder, backup, escalation), in the
    order they were first told."""
    marks = ",".join("?" for _ in ASKED)
    rows = await tx.fetch_all(
        "SELECT worker_id, MIN(id) AS first FROM notifications WHERE incident_id = ? "  # noqa: S608
        f"AND worker_id IS NOT NULL AND purpose IN ({marks}) GROUP BY worker_id ORDER BY first",
        (incident_id, *ASKED))
    return [int(r["worker_id"]) for r in rows]


async def queue_closure(
    tx: Transaction,
    *,
    incident_id: int,
    purpose: Purpose,
    context: NotificationContext,
    skip_worker: int | None = None,
) -> int:
    """Tell everyone who was notified that the incident was acknowledged / resolved.

    ``skip_worker`` (the worker who acted, when known) is not told what they did.
    """
    recipients = [w for w in await notified_workers(tx, incident_id) if w != skip_worker]
    return await queue_notifications(tx, incident_id=incident_id, recipients=recipients,
                                     purpose=purpose, context=context)


def visitor_context_text(stored: str, language: str, timezone: str) -> str:
    """The sentence telling a worker that a visitor came in shortly before this exit."""
    context = loads_dict(stored)
    complete = context.get("complete_at")
    since = (from_ts(str(complete)).astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M:%S")
             if complete else t("notify.visitor_context.start", language))
    return t("notify.visitor_context", language, seconds=context.get("entered_s_before", "?"),
             came_in=context.get("came_in", "?"), went_out=context.get("went_out", "?"),
             since=since)


async def supervisors_for(tx: Transaction, household_id: int) -> list[int]:
    """Who hears of an unacknowledged incident: the grid's supervisor, else district-wide ones."""
    row = await tx.fetch_one(
        "SELECT g.supervisor_id FROM households h JOIN grids g ON g.id = h.grid_id "
        "WHERE h.id = ? AND g.supervisor_id IS NOT NULL", (household_id,),
    )
    if row is not None:
        return [int(row["supervisor_id"])]
    rows = await tx.fetch_all(
        "SELECT id FROM workers WHERE role = 'supervisor' AND grid_id IS NULL AND active = 1 "
        "ORDER BY id")
    return [int(r["id"]) for r in rows]


async def queue_incident_notifications(
    tx: Transaction,
    *,
    incident_id: int,
    kind: str,
    household_id: int,
    device_id: str | None,
    at: str,
    dashboard_url: str,
    timezone: str,
) -> int:
    """Queue the first alert to the household's grid worker; return how many were queued.

    ``kind``, ``device_id`` and ``at`` are read from the incident itself; they
    stay in the signature for callers written against the first version.
    """
    del kind, device_id, at
    return await queue_alert(tx, incident_id=incident_id, household_id=household_id,
                             context=NotificationContext(dashboard_url, timezone))

"""Queue notifications inside the transaction that made them necessary.

Writing the notification rows in the same transaction as the incident (or
the escalation deadline it advances) means a crash can never leave an
incident nobody will be told about, nor tell anybody twice. Text comes from
the catalogue in each recipient's own language, with the household's
address, the local time, the kind of incident and a link to its page.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from ground.i18n import t
from ground.timeutil import from_ts, now_ts
from server.config import ServerSettings
from server.db.base import Transaction
from server.domain.ack_links import ack_secret, new_ack_link
from server.domain.common import loads_dict, loads_list

__all__ = [
    "NotificationContext",
    "Purpose",
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
    WITHDRAWN = "withdrawn"


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


_KEYS = {
    Purpose.ALERT: ("notify.title", "notify.body"),
    Purpose.REMINDER: ("notify.reminder.title", "notify.reminder.body"),
    Purpose.ESCALATION: ("notify.escalation.title", "notify.escalation.body"),
    Purpose.WITHDRAWN: ("notify.withdrawn.title", "notify.withdrawn.body"),
}


# An alert about something other than a door crossing has its own wording.
_ALERT_KEYS_OF_KIND = {
    "fever": ("notify.fever.title", "notify.fever.body"),
    "visitor_overstay": ("notify.visitor_overstay.title", "notify.visitor_overstay.body"),
}

_ASKS_FOR_ACK = frozenset({Purpose.ALERT, Purpose.REMINDER, Purpose.ESCALATION})


async def queue_notifications(
    tx: Transaction,
    *,
    incident_id: int,
    recipients: list[int],
    purpose: Purpose,
    context: NotificationContext,
) -> int:
    """Queue one notification per Apprise URL of each recipient; return how many."""
    incident = await tx.fetch_one(
        "SELECT i.kind, i.device_id, i.opened_at, i.crossed_at, i.verdict, i.reminders, "
        "i.detail, i.visitor_context, "
        "i.acknowledged_by, "
        "h.name AS household, h.address, w.name AS worker FROM incidents i "
        "JOIN households h ON h.id = i.household_id LEFT JOIN workers w ON w.id = h.worker_id "
        "WHERE i.id = ?", (incident_id,),
    )
    if incident is None or not recipients:
        return 0
    marks = ",".join("?" for _ in recipients)
    people = await tx.fetch_all(
        f"SELECT id, language, apprise_urls FROM workers WHERE id IN ({marks}) "  # noqa: S608
        "AND active = 1", recipients,
    )
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
    created = now_ts()
    # Alerts, reminders and escalations ask for an acknowledgement: each recipient gets a
    # link of their own (acknowledging as them); a withdrawal asks for nothing.
    secret = await ack_secret(tx) if purpose in _ASKS_FOR_ACK else None
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
            "verdict": (t(f"incident.verdict.{incident['verdict']}", language)
                        if incident["verdict"] else "-"),
        }
        title, body = t(title_key, language, **values), t(body_key, language, **values)
        if incident["visitor_context"] and purpose is not Purpose.WITHDRAWN:
            body += "\n" + visitor_context_text(incident["visitor_context"], language,
                                                context.timezone)
        rows += [(incident_id, int(person["id"]), url, title, body, created, created,
                  purpose.value) for url in loads_list(person["apprise_urls"])]
    await tx.executemany(
        "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, attempts, "
        "next_attempt_at, created_at, purpose) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        rows,
    )
    return len(rows)


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
    row = await tx.fetch_one("SELECT worker_id FROM households WHERE id = ?", (household_id,))
    if row is None or row["worker_id"] is None:
        return 0
    return await queue_notifications(
        tx, incident_id=incident_id, recipients=[int(row["worker_id"])], purpose=Purpose.ALERT,
        context=NotificationContext(dashboard_url, timezone),
    )

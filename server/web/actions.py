"""The dashboard's writes: every change goes through here, in one transaction with its audit record.

Where the server's domain (issue 6) offers a function, this module calls it;
the few operations below that the domain does not have yet are written here
once, each a single conditional UPDATE/INSERT, and will be replaced by the
domain's functions when they land.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum

from doorwatch.errors import DoorwatchError
from doorwatch.timeutil import now_ts, to_ts
from server.audit import audit
from server.db.base import Database
from server.incidents import IncidentState

__all__ = [
    "ActionError",
    "Outcome",
    "acknowledge_incident",
    "end_leave",
    "grant_leave",
    "record_followup",
    "resolve_incident",
]


class Outcome(StrEnum):
    """How an incident ended (keys of ``incident.outcome.*`` in the catalogue)."""

    CONFIRMED_BREACH = "confirmed_breach"
    FALSE_ALARM = "false_alarm"
    AUTHORISED = "authorised"
    DEVICE_FAULT = "device_fault"


class ActionError(DoorwatchError, ValueError):
    """A change was refused (wrong state, bad value).

    ``key`` names the message ``web.error.<key>`` in the catalogue.
    """

    def __init__(self, key: str, detail: str = ""):
        self.key = key
        super().__init__(f"{key}: {detail}" if detail else key)


async def acknowledge_incident(db: Database, incident_id: int, actor: str) -> None:
    """open -> acknowledged, recording who and when; stops escalation timers."""
    now = now_ts()
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE incidents SET state = ?, acknowledged_at = ?, acknowledged_by = ?, "
            "updated_at = ?, escalate_at = NULL, remind_at = NULL WHERE id = ? AND state = ?",
            (IncidentState.ACKNOWLEDGED.value, now, actor, now, incident_id,
             IncidentState.OPEN.value),
        )
        if changed != 1:
            raise ActionError("not_open")
        await audit(tx, actor, "incident.ack", f"incident:{incident_id}")


async def resolve_incident(
    db: Database, incident_id: int, actor: str, outcome: Outcome, note: str
) -> None:
    """open/acknowledged -> resolved with an outcome and a note (an unacknowledged one is
    acknowledged by the same person at the same moment, so time-to-acknowledge is defined)."""
    now = now_ts()
    async with db.transaction() as tx:
        changed = await tx.execute(
            "UPDATE incidents SET state = ?, resolved_at = ?, resolved_by = ?, outcome = ?, "
            "note = ?, updated_at = ?, acknowledged_at = COALESCE(acknowledged_at, ?), "
            "acknowledged_by = COALESCE(acknowledged_by, ?), escalate_at = NULL, "
            "remind_at = NULL WHERE id = ? AND state != ?",
            (IncidentState.RESOLVED.value, now, actor, outcome.value, note, now, now, actor,
             incident_id, IncidentState.RESOLVED.value),
        )
        if changed != 1:
            raise ActionError("already_resolved")
        await audit(tx, actor, "incident.resolve", f"incident:{incident_id}",
                    f"{outcome.value}: {note}"[:2000])


async def grant_leave(
    db: Database, household_id: int, starts_at: datetime, ends_at: datetime, reason: str,
    actor: str,
) -> int:
    """Permit the household to leave between ``starts_at`` and ``ends_at``; return the leave id."""
    if ends_at <= starts_at:
        raise ActionError("leave_window")
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO leaves (household_id, starts_at, ends_at, reason, granted_by, state, "
            "created_at) VALUES (?, ?, ?, ?, ?, 'granted', ?) RETURNING id",
            (household_id, to_ts(starts_at), to_ts(ends_at), reason, actor, now_ts()),
        )
        assert row is not None
        await audit(tx, actor, "leave.grant", f"household:{household_id}",
                    f"leave:{row['id']} {to_ts(starts_at)}..{to_ts(ends_at)} {reason}"[:2000])
        return int(row["id"])


async def end_leave(db: Database, leave_id: int, actor: str) -> None:
    """End a permitted leave now (the person is back, or the leave is withdrawn)."""
    now = now_ts()
    async with db.transaction() as tx:
        row = await tx.fetch_one("SELECT household_id, state FROM leaves WHERE id = ?",
                                 (leave_id,))
        if row is None or row["state"] in ("ended", "cancelled", "overdue"):
            raise ActionError("leave_not_active")
        await tx.execute(
            "UPDATE leaves SET state = 'ended', cancelled_at = ?, "
            "ends_at = CASE WHEN ends_at > ? THEN ? ELSE ends_at END WHERE id = ?",
            (now, now, now, leave_id),
        )
        await audit(tx, actor, "leave.end", f"household:{row['household_id']}",
                    f"leave:{leave_id}")


async def record_followup(
    db: Database, household_id: int, day: date, temperatures: dict[str, float],
    symptoms: str, note: str, actor: str,
) -> int:
    """Record today's follow-up of a household (temperature per member, symptoms, note)."""
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO followups (household_id, day, recorded_by, recorded_at, temperatures, "
            "symptoms, note) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (household_id, day.isoformat(), actor, now_ts(), json.dumps(temperatures,
             ensure_ascii=False), symptoms, note),
        )
        assert row is not None
        await audit(tx, actor, "followup.record", f"household:{household_id}",
                    f"followup:{row['id']} {day.isoformat()}")
        return int(row["id"])

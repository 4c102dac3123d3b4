"""Reminders and the escalation ladder, from persisted deadlines.

The ladder follows the duty roster (:mod:`server.domain.roster`): the first
alert goes to the incident's first responder (``responder_id``: the assigned
worker on shift, else the on-duty one); unacknowledged, they are reminded
every ``remind_every_s``; at ``backup_at`` the shift's backup worker is told;
at ``escalate_at`` the supervisor (for a grouped offline incident, every member
grid's backup and supervisor: ``incident_chains``). Every reminder goes to everyone told so
far (responder, backup, supervisor), repeating until somebody acknowledges;
:func:`server.domain.notification_outbox.queue_closure` then tells them all
when it is acknowledged and when resolved.

Each open incident carries ``remind_at``, ``backup_at`` and ``escalate_at``. A tick finds
the due ones and advances each deadline with a *conditional* UPDATE
(``WHERE id = ? AND state = 'open' AND remind_at = <the value read>``) in the
same transaction that queues the notification. Of several server instances
only one can win that UPDATE (PostgreSQL re-checks the WHERE after the row
lock; SQLite serializes writers), so a reminder goes out once; a restart
simply finds the deadlines where they were. Acknowledging clears both
deadlines, which also makes any in-flight UPDATE match nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.notification_outbox import (
    NotificationContext,
    Purpose,
    queue_notifications,
    supervisors_for,
)
from server.jobs.periodic import run_periodically

__all__ = ["Escalator", "TickResult"]

log = get_logger(__name__)

_BATCH = 200


@dataclass(slots=True)
class TickResult:
    """What one tick did."""

    reminded: int = 0
    escalated: int = 0
    backed_up: int = 0


class Escalator:
    """The escalation loop (task name ``escalation``)."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()
        self._context = NotificationContext.of(settings)
        self.totals = TickResult()

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and retried next time."""
        await run_periodically("escalation", self.tick, self._settings.escalation.poll_interval_s)

    async def tick(self) -> TickResult:
        """Send every reminder and escalation that is due now."""
        now = to_ts(self._clock.now())
        due = await self._db.fetch_all(
            "SELECT id, household_id, escalate_at, remind_at, backup_at, backup_id, "
            "responder_id FROM incidents WHERE state = 'open' "
            "AND ((escalate_at IS NOT NULL AND escalate_at <= ?) "
            "OR (backup_at IS NOT NULL AND backup_at <= ?) "
            "OR (remind_at IS NOT NULL AND remind_at <= ?)) ORDER BY id LIMIT ?",
            (now, now, now, _BATCH),
        )
        result = TickResult()
        for row in due:
            async with self._db.transaction() as tx:
                # A reminder goes to those told before this tick, not to whoever this
                # very tick tells for the first time.
                remind = row["remind_at"] is not None and row["remind_at"] <= now
                told = await self._told_so_far(tx, row) if remind else []
                if row["escalate_at"] is not None and row["escalate_at"] <= now:
                    result.escalated += await self._escalate(tx, row, now)
                if row["backup_at"] is not None and row["backup_at"] <= now:
                    result.backed_up += await self._backup(tx, row, now)
                if remind:
                    result.reminded += await self._remind(tx, row, now, told)
        self.totals.reminded += result.reminded
        self.totals.escalated += result.escalated
        self.totals.backed_up += result.backed_up
        return result

    async def _backup(self, tx: Transaction, row: Row, now: str) -> int:
        won = await tx.execute(
            "UPDATE incidents SET backup_at = NULL, backup_notified_at = ?, updated_at = ? "
            "WHERE id = ? AND state = 'open' AND backup_at = ?",
            (now, now, row["id"], row["backup_at"]),
        )
        if not won:
            return 0
        recipients = [] if row["backup_id"] is None else [int(row["backup_id"])]
        # A grouped offline incident: every member grid's shift backup (storms.py).
        for chain in await tx.fetch_all("SELECT backup_id FROM incident_chains "
                                        "WHERE incident_id = ? AND backup_id IS NOT NULL "
                                        "ORDER BY id", (row["id"],)):
            if int(chain["backup_id"]) not in recipients:
                recipients.append(int(chain["backup_id"]))
        if not recipients:
            return 0
        queued = await queue_notifications(tx, incident_id=int(row["id"]), recipients=recipients,
                                           purpose=Purpose.BACKUP, context=self._context)
        await audit(tx, "system", "incident.backup", f"incident:{row['id']}",
                    f"backup worker {recipients}, {queued} notifications")
        log.warning("incident passed to the backup worker",
                    extra={"incident_id": row["id"], "recipients": recipients,
                           "notifications": queued})
        return 1

    async def _escalate(self, tx: Transaction, row: Row, now: str) -> int:
        won = await tx.execute(
            "UPDATE incidents SET escalate_at = NULL, escalated_at = ?, updated_at = ? "
            "WHERE id = ? AND state = 'open' AND escalate_at = ?",
            (now, now, row["id"], row["escalate_at"]),
        )
        if not won:
            return 0  # another instance did it, or it was acknowledged meanwhile
        recipients = await supervisors_for(tx, int(row["household_id"]))
        # A grouped offline incident: every member grid's supervisor too (storms.py).
        for chain in await tx.fetch_all("SELECT household_id FROM incident_chains "
                                        "WHERE incident_id = ? ORDER BY id", (row["id"],)):
            for supervisor in await supervisors_for(tx, int(chain["household_id"])):
                if supervisor not in recipients:
                    recipients.append(supervisor)
        queued = await queue_notifications(tx, incident_id=int(row["id"]), recipients=recipients,
                                           purpose=Purpose.ESCALATION, context=self._context)
        await audit(tx, "system", "incident.escalate", f"incident:{row['id']}",
                    f"supervisors {recipients}, {queued} notifications")
        log.warning("incident escalated to supervisor",
                    extra={"incident_id": row["id"], "recipients": recipients,
                           "notifications": queued})
        return 1

    async def _remind(self, tx: Transaction, row: Row, now: str, recipients: list[int]) -> int:
        # The next reminder is one period after this one, skipping any missed
        # while the server was down (one reminder now, not a burst of them).
        every = timedelta(seconds=self._settings.escalation.remind_every_s)
        following = from_ts(row["remind_at"]) + every
        if following <= from_ts(now):
            following = from_ts(now) + every
        won = await tx.execute(
            "UPDATE incidents SET remind_at = ?, reminders = reminders + 1 "
            "WHERE id = ? AND state = 'open' AND remind_at = ?",
            (to_ts(following), row["id"], row["remind_at"]),
        )
        if not won:
            return 0
        queued = await queue_notifications(tx, incident_id=int(row["id"]), recipients=recipients,
                                           purpose=Purpose.REMINDER, context=self._context)
        log.info("reminder queued", extra={"incident_id": row["id"], "notifications": queued,
                                           "recipients": recipients})
        return 1

    async def _told_so_far(self, tx: Transaction, row: Row) -> list[int]:
        """The first responder, then everyone alerted, passed to as backup or escalated to.

        Read from the incident and the notifications already queued, so a
        restart or another instance sees the same set; with nobody told yet,
        the household's assigned worker.
        """
        first = [] if row["responder_id"] is None else [int(row["responder_id"])]
        told = await tx.fetch_all(
            "SELECT worker_id, MIN(id) AS first FROM notifications WHERE incident_id = ? "
            "AND worker_id IS NOT NULL AND purpose IN ('alert', 'backup', 'escalation') "
            "GROUP BY worker_id ORDER BY first", (row["id"],))
        everyone = first + [int(r["worker_id"]) for r in told if int(r["worker_id"]) not in first]
        if everyone:
            return everyone
        worker = await tx.fetch_one("SELECT worker_id FROM households WHERE id = ?",
                                    (row["household_id"],))
        return [] if worker is None or worker["worker_id"] is None else [int(worker["worker_id"])]

"""Reminders to the grid worker and escalation to the supervisor, from persisted deadlines.

Each open incident carries ``remind_at`` and ``escalate_at``. A tick finds
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
            "SELECT id, household_id, escalate_at, remind_at FROM incidents WHERE state = 'open' "
            "AND ((escalate_at IS NOT NULL AND escalate_at <= ?) "
            "OR (remind_at IS NOT NULL AND remind_at <= ?)) ORDER BY id LIMIT ?",
            (now, now, _BATCH),
        )
        result = TickResult()
        for row in due:
            async with self._db.transaction() as tx:
                if row["escalate_at"] is not None and row["escalate_at"] <= now:
                    result.escalated += await self._escalate(tx, row, now)
                if row["remind_at"] is not None and row["remind_at"] <= now:
                    result.reminded += await self._remind(tx, row, now)
        self.totals.reminded += result.reminded
        self.totals.escalated += result.escalated
        return result

    async def _escalate(self, tx: Transaction, row: Row, now: str) -> int:
        won = await tx.execute(
            "UPDATE incidents SET escalate_at = NULL, escalated_at = ?, updated_at = ? "
            "WHERE id = ? AND state = 'open' AND escalate_at = ?",
            (now, now, row["id"], row["escalate_at"]),
        )
        if not won:
            return 0  # another instance did it, or it was acknowledged meanwhile
        recipients = await supervisors_for(tx, int(row["household_id"]))
        queued = await queue_notifications(tx, incident_id=int(row["id"]), recipients=recipients,
                                           purpose=Purpose.ESCALATION, context=self._context)
        await audit(tx, "system", "incident.escalate", f"incident:{row['id']}",
                    f"supervisors {recipients}, {queued} notifications")
        log.warning("incident escalated to supervisor",
                    extra={"incident_id": row["id"], "recipients": recipients,
                           "notifications": queued})
        return 1

    async def _remind(self, tx: Transaction, row: Row, now: str) -> int:
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
        worker = await tx.fetch_one("SELECT worker_id FROM households WHERE id = ?",
                                    (row["household_id"],))
        recipients = [] if worker is None or worker["worker_id"] is None else [
            int(worker["worker_id"])]
        queued = await queue_notifications(tx, incident_id=int(row["id"]), recipients=recipients,
                                           purpose=Purpose.REMINDER, context=self._context)
        log.info("reminder queued", extra={"incident_id": row["id"], "notifications": queued})
        return 1

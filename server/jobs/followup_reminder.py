"""The daily follow-up reminder: each worker hears which of their households are not visited yet.

At ``[followups] remind_at`` (local time in ``notify.timezone``) every active
grid worker with households in quarantine (armed) that have no follow-up for
the local day gets one notification listing them, in their own language,
through their Apprise URLs (task name ``followup-reminder``).

Like retention, the run is claimed in ``scheduled_jobs`` with a conditional
UPDATE on ``next_run_at``, and the notifications are queued in the claiming
transaction: with several instances it runs once a day, and after a restart
it runs if its time passed while the server was down (the same day, since
the households are looked up for the day that is due). The very first start
schedules the next reminder time (never one already past).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ground.i18n import t
from ground.logs import get_logger
from ground.timeutil import now_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Transaction
from server.domain.common import loads_list
from server.jobs.periodic import claim_due_run, run_periodically

__all__ = ["FollowUpReminder", "ReminderReport", "next_reminder"]

log = get_logger(__name__)

_JOB = "followup-reminder"
PURPOSE = "followup_reminder"


@dataclass(slots=True)
class ReminderReport:
    """What one run queued."""

    day: date
    workers: list[int] = field(default_factory=list)
    households: int = 0
    notifications: int = 0


def _on(day: date, at: str, zone: str) -> datetime:
    hour, minute = (int(p) for p in at.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


def next_reminder(after: datetime, at: str, zone: str) -> datetime:
    """The first local ``at`` (``HH:MM``) strictly after ``after``."""
    local = after.astimezone(ZoneInfo(zone))
    candidate = _on(local.date(), at, zone)
    return candidate if candidate > local else _on(local.date() + timedelta(days=1), at, zone)


async def _queue(tx: Transaction, day: date, settings: ServerSettings,
                 report: ReminderReport) -> None:
    rows = await tx.fetch_all(
        "SELECT w.id AS worker_id, w.name AS worker, w.language, w.apprise_urls, "
        "h.name, h.address FROM households h JOIN workers w ON w.id = h.worker_id "
        "WHERE h.armed = 1 AND h.purged_at IS NULL AND w.active = 1 AND NOT EXISTS "
        "(SELECT 1 FROM followups f WHERE f.household_id = h.id AND f.day = ?) "
        "ORDER BY w.id, h.name, h.id", (day.isoformat(),))
    by_worker: dict[int, list[dict[str, object]]] = {}
    for row in rows:
        by_worker.setdefault(int(row["worker_id"]), []).append(row)
    link = f"{settings.notify.dashboard_url.rstrip('/')}/followups"
    created = now_ts()
    out = []
    for worker_id, households in by_worker.items():
        first = households[0]
        language = str(first["language"])
        listed = "\n".join(f"· {h['name']}（{h['address']}）" if language == "zh_CN"
                           else f"· {h['name']} ({h['address']})" for h in households)
        values = {"count": len(households), "worker": first["worker"], "day": day.isoformat(),
                  "households": listed, "link": link}
        title = t("notify.followup_reminder.title", language, **values)
        body = t("notify.followup_reminder.body", language, **values)
        urls = loads_list(str(first["apprise_urls"]))
        out += [(worker_id, url, title, body, created, created, PURPOSE) for url in urls]
        report.workers.append(worker_id)
        report.households += len(households)
    await tx.executemany(
        "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, attempts, "
        "next_attempt_at, created_at, purpose) VALUES (NULL, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        out)
    report.notifications = len(out)


class FollowUpReminder:
    """The daily reminder of households not yet visited (task name ``followup-reminder``)."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()

    async def run(self) -> None:
        """Remind whenever it is due, until cancelled."""
        await run_periodically(_JOB, self.run_if_due, self._settings.followups.poll_interval_s)

    async def run_if_due(self) -> ReminderReport | None:
        """Claim and run the reminder if its time has come; None when not due (or claimed)."""
        at = self._settings.followups.remind_at
        if at is None:
            return None
        zone = self._settings.notify.timezone
        now = self._clock.now()
        async with self._db.transaction() as tx:
            # The first ever run: the next reminder time. A server started for the first time
            # after the hour waits for tomorrow's rather than reminding at once.
            first = next_reminder(now - timedelta(seconds=1), at, zone)
            due = await claim_due_run(tx, _JOB, now, first=first,
                                      following=next_reminder(now, at, zone),
                                      instance=self._settings.instance)
            if due is None:
                return None
            # The day whose reminder this is (a run late after a restart keeps its own day).
            report = ReminderReport(day=due.astimezone(ZoneInfo(zone)).date())
            await _queue(tx, report.day, self._settings, report)
            await tx.execute("UPDATE scheduled_jobs SET last_result = ? WHERE job = ?",
                             (f"{report.households} households, {len(report.workers)} workers",
                              _JOB))
        log.info("follow-up reminder queued",
                 extra={"day": report.day.isoformat(), "workers": report.workers,
                        "households": report.households, "notifications": report.notifications})
        return report

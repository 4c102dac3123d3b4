"""Retention: a household's personal data and snapshots are purged N days after its quarantine.

What is purged: the household's name, address, members and notes (replaced
by a marker), its daily follow-ups, who visited and why (registered visits), release notes,
the member and visitor names in fever and overstay incidents, the snapshots
of its events, the reasons of its leaves, incident notes and the text of
notifications about it (they quote name and address). Rejected messages are deleted
``retention.rejected_days`` after they arrived (server/ingest/rejections.py).
What stays: events, incidents with kinds, times and outcomes, and the audit
log, so statistics and accountability survive. Each purge writes an audit
record saying what it removed.

The scheduled job (task name ``retention``) claims its run in
``scheduled_jobs`` with a conditional UPDATE on ``next_run_at``, so with
several instances it runs once per interval, and after a restart it runs
when it was due rather than an interval later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ground.logs import get_logger
from ground.timeutil import to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Transaction
from server.domain.audit import audit
from server.jobs.periodic import run_periodically

__all__ = ["PurgeReport", "RetentionJob", "purge_due"]

log = get_logger(__name__)

PURGED = "(purged)"
_JOB = "retention"


@dataclass(slots=True)
class PurgeReport:
    """What a purge removed (or would remove, in a dry run)."""

    households: list[int] = field(default_factory=list)
    snapshots: int = 0
    followups: int = 0
    notifications: int = 0
    rejected_messages: int = 0
    dry_run: bool = False


async def _count(tx: Transaction | Database, sql: str, household_id: int) -> int:
    row = await tx.fetch_one(sql, (household_id,))
    return 0 if row is None else int(row["n"])


_SNAPSHOTS = ("SELECT COUNT(*) AS n FROM snapshots WHERE event_id IN "
              "(SELECT event_id FROM events WHERE household_id = ?)")
_FOLLOWUPS = "SELECT COUNT(*) AS n FROM followups WHERE household_id = ?"


async def _purge_one(tx: Transaction, household_id: int, now: str, actor: str,
                     report: PurgeReport) -> None:
    won = await tx.execute(
        "UPDATE households SET purged_at = ?, name = ?, address = ?, members = '[]', "
        "notes = NULL, updated_at = ? WHERE id = ? AND purged_at IS NULL",
        (now, f"{PURGED} #{household_id}", PURGED, now, household_id))
    if not won:
        return  # another instance got there first
    snapshots = await tx.execute(
        "DELETE FROM snapshots WHERE event_id IN "
        "(SELECT event_id FROM events WHERE household_id = ?)", (household_id,))
    followups = await tx.execute("DELETE FROM followups WHERE household_id = ?", (household_id,))
    await tx.execute("UPDATE leaves SET reason = ? WHERE household_id = ?", (PURGED, household_id))
    await tx.execute("UPDATE incidents SET note = ? WHERE household_id = ? AND note IS NOT NULL",
                     (PURGED, household_id))
    # Fever and overstay details name members and visitors.
    await tx.execute("UPDATE incidents SET detail = ? WHERE household_id = ? "
                     "AND kind IN ('fever', 'visitor_overstay') AND detail IS NOT NULL",
                     (PURGED, household_id))
    await tx.execute("UPDATE visits SET visitor = ?, organisation = NULL, purpose = ? "
                     "WHERE household_id = ?", (PURGED, PURGED, household_id))
    await tx.execute("UPDATE releases SET note = ? WHERE household_id = ? AND note IS NOT NULL",
                     (PURGED, household_id))
    notifications = await tx.execute(
        "UPDATE notifications SET title = ?, body = ? WHERE incident_id IN "
        "(SELECT id FROM incidents WHERE household_id = ?)", (PURGED, PURGED, household_id))
    await audit(tx, actor, "retention.purge", f"household:{household_id}",
                f"personal data; {snapshots} snapshots, {followups} follow-ups, "
                f"{notifications} notification texts")
    report.households.append(household_id)
    report.snapshots += snapshots
    report.followups += followups
    report.notifications += notifications


async def _purge_rejected(db: Database, cutoff: str, report: PurgeReport) -> None:
    """Delete rejected messages received before ``cutoff`` (their counts stay)."""
    if report.dry_run:
        row = await db.fetch_one(
            "SELECT COUNT(*) AS n FROM rejected_messages WHERE received_at < ?", (cutoff,))
        report.rejected_messages = 0 if row is None else int(row["n"])
        return
    async with db.transaction() as tx:
        report.rejected_messages = await tx.execute(
            "DELETE FROM rejected_messages WHERE received_at < ?", (cutoff,))
    if report.rejected_messages:
        log.info("old rejected messages deleted", extra={"count": report.rejected_messages})


async def purge_due(
    db: Database, *, days: int, actor: str, clock: Clock | None = None, dry_run: bool = False,
    rejected_days: int | None = None,
) -> PurgeReport:
    """Purge every household whose quarantine ended more than ``days`` days ago.

    With ``rejected_days``, also delete rejected messages older than that.
    """
    now = (clock or SystemClock()).now()
    cutoff = to_ts(now - timedelta(days=days))
    due = await db.fetch_all(
        "SELECT id FROM households WHERE purged_at IS NULL AND quarantine_end IS NOT NULL "
        "AND quarantine_end <= ? ORDER BY id", (cutoff,))
    report = PurgeReport(dry_run=dry_run)
    if rejected_days is not None:
        await _purge_rejected(db, to_ts(now - timedelta(days=rejected_days)), report)
    for row in due:
        household_id = int(row["id"])
        if dry_run:
            report.households.append(household_id)
            report.snapshots += await _count(db, _SNAPSHOTS, household_id)
            report.followups += await _count(db, _FOLLOWUPS, household_id)
            continue
        async with db.transaction() as tx:
            await _purge_one(tx, household_id, to_ts(now), actor, report)
    if report.households and not dry_run:
        log.info("personal data purged", extra={"households": report.households,
                                                "snapshots": report.snapshots})
    return report


class RetentionJob:
    """The scheduled purge (task name ``retention``)."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()

    async def run(self) -> None:
        """Run the purge whenever it is due, until cancelled."""
        # Checked at least every minute: whether it is due is in the database.
        interval_s = min(60.0, self._settings.retention.interval_s)
        await run_periodically("retention", self.run_if_due, interval_s)

    async def run_if_due(self) -> PurgeReport | None:
        """Claim and run the job if its time has come; None when not due (or claimed)."""
        now = self._clock.now()
        following = to_ts(now + timedelta(seconds=self._settings.retention.interval_s))
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO scheduled_jobs (job, next_run_at) VALUES (?, ?) "
                "ON CONFLICT (job) DO NOTHING", (_JOB, to_ts(now)))
            won = await tx.execute(
                "UPDATE scheduled_jobs SET next_run_at = ?, last_run_at = ?, last_run_by = ? "
                "WHERE job = ? AND next_run_at <= ?",
                (following, to_ts(now), self._settings.instance, _JOB, to_ts(now)))
        if not won:
            return None
        report = await purge_due(self._db, days=self._settings.retention.days,
                                 actor="retention", clock=self._clock,
                                 rejected_days=self._settings.retention.rejected_days)
        async with self._db.transaction() as tx:
            await tx.execute("UPDATE scheduled_jobs SET last_result = ? WHERE job = ?",
                             (f"{len(report.households)} households", _JOB))
        return report

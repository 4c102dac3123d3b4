"""Grid reports to supervisors: daily, and a weekly summary (task name ``grid-report``).

At ``[reports] daily_at`` (local time in ``notify.timezone``) each grid with a
supervisor gets the report of the previous local day; on
``weekly_weekday`` also the summary of the seven days before. Each report is
built (server/domain/reports.py) in the supervisor's language, rendered to a
PDF (server/notify/report_pdf.py), stored in ``reports`` and announced by one
notification per Apprise URL of the supervisor, carrying the key figures,
the PDF as an attachment where the channel takes one, and a link to it.

Each kind is claimed in ``scheduled_jobs`` (``grid-report-daily``,
``grid-report-weekly``) with a conditional UPDATE on ``next_run_at``, as the
follow-up reminder is: with several instances a report goes out once; a run
that was due while the server was down goes out when it starts, for the day
that was due. A first start schedules the next time, never one already past.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ground.i18n import normalize_language, t
from ground.logs import get_logger
from ground.timeutil import now_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database
from server.domain.common import loads_list
from server.domain.reports import GridReport, ReportKind, build_grid_report
from server.jobs.followup_reminder import next_reminder
from server.jobs.periodic import claim_due_run, run_periodically
from server.notify.report_pdf import render_report_pdf, summary_lines, title

__all__ = ["GridReportJob", "ReportRun", "next_run", "store_report"]

log = get_logger(__name__)

PURPOSE = "grid_report"


@dataclass(slots=True)
class ReportRun:
    """What one run of one kind did."""

    kind: ReportKind
    first_day: date
    reports: list[int] = field(default_factory=list)
    notifications: int = 0


def next_run(after: datetime, at: str, zone: str, weekday: int | None) -> datetime:
    """The first local ``at`` strictly after ``after`` (on ``weekday`` if given)."""
    candidate = next_reminder(after, at, zone)
    while weekday is not None and candidate.astimezone(ZoneInfo(zone)).weekday() != weekday:
        candidate = next_reminder(candidate, at, zone)
    return candidate


async def store_report(db: Database, report: GridReport, language: str, pdf: bytes) -> int:
    """Keep a generated report with its PDF; return its id."""
    async with db.transaction() as tx:
        rows = await tx.fetch_all(
            "INSERT INTO reports (grid_id, kind, first_day, days, language, created_at, pdf) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (report.grid_id, report.kind.value, report.first_day.isoformat(), report.days,
             language, now_ts(), pdf))
    return int(rows[0]["id"])


class GridReportJob:
    """Sends the daily report and the weekly summary when due."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()

    async def run(self) -> None:
        """Check every poll interval until cancelled."""
        await run_periodically("grid-report", self.run_if_due,
                               self._settings.reports.poll_interval_s)

    async def run_if_due(self) -> list[ReportRun]:
        """Send each kind of report whose time has come (claimed once across instances)."""
        cfg = self._settings.reports
        if cfg.daily_at is None:
            return []
        done = []
        kinds: list[tuple[ReportKind, int | None]] = [(ReportKind.DAILY, None)]
        if cfg.weekly_weekday is not None:
            kinds.append((ReportKind.WEEKLY, cfg.weekly_weekday))
        for kind, weekday in kinds:
            due = await self._claim(kind, cfg.daily_at, weekday)
            if due is not None:
                done.append(await self._send(kind, due))
        return done

    async def _claim(self, kind: ReportKind, at: str, weekday: int | None) -> date | None:
        """The local day on which this kind's due run fell, if this instance won it."""
        job = f"grid-report-{kind.value}"
        zone = self._settings.notify.timezone
        now = self._clock.now()
        async with self._db.transaction() as tx:
            due = await claim_due_run(
                tx, job, now, first=next_run(now - timedelta(seconds=1), at, zone, weekday),
                following=next_run(now, at, zone, weekday), instance=self._settings.instance)
        return None if due is None else due.astimezone(ZoneInfo(zone)).date()

    async def _send(self, kind: ReportKind, on: date) -> ReportRun:
        run = ReportRun(kind=kind, first_day=on - timedelta(days=kind.days))
        zone = self._settings.notify.timezone
        base = self._settings.notify.dashboard_url.rstrip("/")
        supervisors = await self._db.fetch_all(
            "SELECT g.id AS grid_id, w.id AS worker_id, w.language, w.apprise_urls FROM grids g "
            "JOIN workers w ON w.id = g.supervisor_id WHERE w.active = 1 ORDER BY g.id")
        for row in supervisors:
            urls = loads_list(str(row["apprise_urls"]))
            if not urls:
                continue
            language = normalize_language(str(row["language"]))
            report = await build_grid_report(
                self._db, int(row["grid_id"]), run.first_day, kind, zone=zone,
                fever_c=self._settings.followups.fever_c, now=self._clock.now())
            pdf = await asyncio.to_thread(render_report_pdf, report, language, zone)
            report_id = await store_report(self._db, report, language, pdf)
            body = t("notify.report.body", language,
                     summary="\n".join(summary_lines(report, language)),
                     link=f"{base}/reports/{report_id}.pdf")
            created = now_ts()
            async with self._db.transaction() as tx:
                await tx.executemany(
                    "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, "
                    "attempts, next_attempt_at, created_at, purpose, report_id) "
                    "VALUES (NULL, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
                    [(row["worker_id"], url, title(report, language), body, created, created,
                      PURPOSE, report_id) for url in urls])
            run.reports.append(report_id)
            run.notifications += len(urls)
        log.info("grid reports queued", extra={"kind": kind.value,
                                               "first_day": run.first_day.isoformat(),
                                               "reports": run.reports,
                                               "notifications": run.notifications})
        return run

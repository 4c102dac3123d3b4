"""Grid reports (issue 19 item 5): figures from real records, a PDF that parses, the daily
job claimed once, the notification at a real HTTP receiver with the PDF attached.

Runs on SQLite and PostgreSQL (conftest's ``database_url``).
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pypdf import PdfReader

from broker.messages import EventKind
from ground.timeutil import utcnow
from server.clock import ManualClock
from server.db.base import Database
from server.domain.checkins import request_checkin
from server.domain.followups import FeverRule, FollowUpIn, record_followup
from server.domain.reports import ReportKind, build_grid_report
from server.jobs.device_watch import DeviceWatch
from server.jobs.grid_report import GridReportJob
from server.notify.report_pdf import render_report_pdf, share_text
from server.notify.sender import NotificationSender
from tests.conftest import Receiver
from tests.server.helpers import EventFeeder, scalar, seed, settings_for

ZONE = "Asia/Shanghai"


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_report_figures_pdf_and_delivery(
    db: Database, database_url: str, receiver: Receiver
) -> None:
    settings = settings_for(database_url, notify={"timezone": ZONE,
                                                  "dashboard_url": "http://dash.example"},
                            reports={"daily_at": "08:00", "weekly_weekday": None})
    now = utcnow()
    clock = ManualClock(now)
    s = await seed(db, supervisor_url=receiver.apprise_url)
    feeder = EventFeeder(db, settings)
    assert (await feeder.send("door-1", EventKind.EXIT, now)).incidents_opened
    today = now.astimezone(ZoneInfo(ZONE)).date()
    await record_followup(db, FollowUpIn(household_id=s.household, day=today,
                                         temperatures={"张三": 38.2, "李四": 36.6}),
                          actor="wang", rule=FeverRule(threshold_c=37.3))
    asked = await request_checkin(db, s.household, actor="wang", window_s=60, now=now)
    # Somebody went out during the second, on a permitted leave: not a missed one; nobody
    # came to the third, during a permitted leave: not a missed one either.
    allowed = await request_checkin(db, s.household, actor="wang", window_s=60, now=now)
    on_leave = await request_checkin(db, s.household, actor="wang", window_s=60, now=now)
    async with db.transaction() as tx:
        await tx.execute("UPDATE checkins SET outcome = 'absent' WHERE id = ?", (asked[0],))
        await tx.execute("UPDATE checkins SET outcome = 'left', context = 'leave' WHERE id = ?",
                         (allowed[0],))
        await tx.execute("UPDATE checkins SET outcome = 'absent', context = 'leave' "
                         "WHERE id = ?", (on_leave[0],))
    watch = DeviceWatch(db, settings, clock)
    await feeder.heartbeat("door-1", now)
    await watch.tick()  # armed; the heartbeat reports no camera frames: the camera is blind

    report = await build_grid_report(db, s.grid, today, ReportKind.DAILY, zone=ZONE,
                                     fever_c=37.3, now=now + timedelta(minutes=30))
    assert report.incidents_by_kind == {"breach": 1, "fever": 1}
    assert (report.visited, report.expected_visits, report.followups) == (1, 1, 1)
    assert [(f.member, f.temperature_c) for f in report.fevers] == [("张三", 38.2)]
    assert report.coverage_share == 0.0  # armed 30 min, camera never verified
    assert (report.checkins_asked, report.checkins_present, report.checkins_missed,
            report.checkins_on_leave) == (3, 0, 1, 2)

    zh = _text(render_report_pdf(report, "zh_CN", ZONE))
    for expected in ("网格日报", "grid-door-1", "违规外出", "随访发热", "张三", "38.2",
                     "随访 1/1 户次", "发热 1 人次", "监测覆盖率 0.0%", "摄像头",
                     "在家签到 3 次：通过 0 次，未通过 1 次，准假外出期间 2 次（不计为未通过）"):
        assert expected in zh, expected
    en = _text(render_report_pdf(report, "en", ZONE))
    for expected in ("Daily grid report", "Breach: someone left", "Fevers: 1 readings",
                     "Follow-ups: 1 of 1 household-days", "Monitoring coverage 0.0%",
                     "Presence check-ins: 3 asked, 0 present, 1 missed, 2 during a permitted "
                     "leave (not missed)"):
        assert expected in en, expected

    # The job at 08:00 the next morning: the previous day's report, once across instances.
    tomorrow = datetime.combine(today + timedelta(days=1), time(8, 0), tzinfo=ZoneInfo(ZONE))
    job_clock = ManualClock(tomorrow - timedelta(minutes=1))
    job = GridReportJob(db, settings, job_clock)
    other = GridReportJob(db, settings.model_copy(update={"instance": "b"}),
                          ManualClock(tomorrow + timedelta(seconds=6)))
    assert await job.run_if_due() == []  # first start: schedules 08:00
    job_clock.set(tomorrow + timedelta(seconds=5))
    runs = await job.run_if_due()
    assert [(r.kind, r.first_day, r.notifications) for r in runs] == [
        (ReportKind.DAILY, today, 1)]
    assert await other.run_if_due() == []
    assert await scalar(db, "SELECT COUNT(*) FROM reports") == 1

    sender = NotificationSender(db, settings.notify, "test")
    await sender.deliver_due()  # (the worker's breach and fever alerts go to a dead port)
    assert receiver.wait_for(1)
    assert len(receiver.received) == 1
    note = receiver.received[0]
    assert str(note["title"]).startswith("Daily grid report: grid-door-1")  # supervisor: en
    assert "Fevers: 1 readings" in str(note["message"])
    assert f"http://dash.example/reports/{runs[0].reports[0]}.pdf" in str(note["message"])
    attachments = note["attachments"]
    assert isinstance(attachments, list)
    assert len(attachments) == 1
    assert attachments[0]["mimetype"] == "application/pdf"
    attached = _text(base64.b64decode(attachments[0]["base64"]))
    assert "Breach: someone left" in attached
    assert share_text(0.0, "en") in attached


async def test_weekly_summary_covers_seven_days(db: Database, database_url: str) -> None:
    settings = settings_for(database_url, notify={"timezone": ZONE},
                            reports={"daily_at": "08:00", "weekly_weekday": 0})
    s = await seed(db)
    monday = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo(ZONE))
    for n in range(7):
        await record_followup(db, FollowUpIn(household_id=s.household,
                                             day=(monday - timedelta(days=7 - n)).date(),
                                             temperatures={"张三": 36.5 + n * 0.2}),
                              actor="wang", rule=FeverRule(threshold_c=37.3))
    clock = ManualClock(monday - timedelta(minutes=1))
    job = GridReportJob(db, settings, clock)
    assert await job.run_if_due() == []
    clock.set(monday)
    runs = await job.run_if_due()
    weekly = [r for r in runs if r.kind is ReportKind.WEEKLY]
    assert len(weekly) == 1
    assert weekly[0].first_day.isoformat() == "2026-02-23"
    report = await build_grid_report(db, s.grid, weekly[0].first_day, ReportKind.WEEKLY,
                                     zone=ZONE, fever_c=37.3, now=monday)
    assert (report.visited, report.expected_visits) == (7, 7)
    assert [f.temperature_c for f in report.fevers] == [37.3, 37.5, 37.7]
    text = _text(render_report_pdf(report, "zh_CN", ZONE))
    assert "网格周报" in text
    assert "2026-02-23 – 2026-03-01" in text

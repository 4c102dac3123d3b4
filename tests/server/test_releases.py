"""Release at the end of a quarantine (issue 19, item 7), on SQLite and PostgreSQL.

Ending early by hand and the period running out both write one release
record (who, when, outcome), queue the disarm for the devices, tell the
worker and start the retention clock; the retention job then purges the
household at the date the record names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ground.timeutil import from_ts
from server.clock import ManualClock
from server.db.base import Database
from server.domain.households import end_quarantine_early, get_household
from server.domain.releases import ReleaseContext, ReleaseOutcome, list_releases
from server.jobs.retention import purge_due
from server.jobs.schedule import Scheduler
from tests.server.helpers import rows, scalar, seed, settings_for

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


async def test_ending_early_writes_the_release_and_tells_the_worker(db: Database) -> None:
    clock = ManualClock(START + timedelta(days=5))
    s = await seed(db, start=START, end=START + timedelta(days=14), worker_language="en")
    context = ReleaseContext(retention_days=30, dashboard_url="https://dw.example",
                             timezone="Asia/Shanghai")
    household = await end_quarantine_early(
        db, s.household, actor="李主任", reason="两次核酸阴性", clock=clock,
        outcome=ReleaseOutcome.TESTED_NEGATIVE, release=context)
    assert not household.armed
    (release,) = await list_releases(db, s.household)
    assert (release.released_by, release.outcome, release.note) == (
        "李主任", ReleaseOutcome.TESTED_NEGATIVE, "两次核酸阴性")
    assert release.released_at == clock.now()
    assert release.planned_end == START + timedelta(days=14)
    assert release.retain_until == clock.now() + timedelta(days=30)
    # The devices' disarm is queued for the schedule loop to publish (retained).
    assert await scalar(db, "SELECT COUNT(*) FROM devices WHERE arm_command = 'disarm' "
                            "AND arm_published_at IS NULL") == 1
    (note,) = await rows(db, "SELECT worker_id, title, body, incident_id, purpose "
                             "FROM notifications")
    assert (note["worker_id"], note["incident_id"], note["purpose"]) == (s.worker, None,
                                                                         "release")
    assert note["title"] == "[Released] 张三家: Tested negative, released early"
    assert "by 李主任" in note["body"]
    assert "Personal data is kept until 2026-04-05" in note["body"]
    assert "https://dw.example/households/" in note["body"]
    assert await scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'household.release' "
                            "AND actor = '李主任'") == 1
    # The retention clock started at the release, not at the planned end.
    early = await purge_due(db, days=30, actor="retention",
                            clock=ManualClock(clock.now() + timedelta(days=29)))
    assert early.households == []
    due = await purge_due(db, days=30, actor="retention",
                          clock=ManualClock(clock.now() + timedelta(days=30, seconds=1)))
    assert due.households == [s.household]
    assert (await list_releases(db, s.household))[0].note == "(purged)"


async def test_period_running_out_is_a_completed_release(db: Database, database_url: str) -> None:
    s = await seed(db, start=START, end=START + timedelta(days=14))
    settings = settings_for(database_url, retention={"days": 90})
    clock = ManualClock(START + timedelta(days=1))
    scheduler = Scheduler(db, settings, None, clock)
    await scheduler.tick()
    assert (await get_household(db, s.household)).armed
    clock.advance(days=14)
    await scheduler.tick()
    await scheduler.tick()  # a second tick (or instance) releases nothing more
    (release,) = await list_releases(db, s.household)
    assert (release.released_by, release.outcome) == ("schedule", ReleaseOutcome.COMPLETED)
    assert release.released_at == START + timedelta(days=14)
    assert release.retain_until == START + timedelta(days=104)
    titles = [r["title"] for r in await rows(
        db, "SELECT title FROM notifications WHERE purpose = 'release'")]
    assert titles == ["【解除隔离】张三家：隔离期满"]
    assert from_ts(str((await rows(db, "SELECT released_at FROM releases"))[0]["released_at"]))

"""The duty roster and the escalation ladder that follows it (real database, moved clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.messages import EventKind
from ground.timeutil import utcnow
from server.clock import ManualClock
from server.config import ServerSettings
from server.db.base import Database
from server.domain import people
from server.domain.errors import InvalidChangeError
from server.domain.incident_opening import IncidentOutcome
from server.domain.incidents import acknowledge_incident, resolve_incident
from server.domain.roster import Shift, ShiftIn, add_shift, covers, list_shifts, remove_shift
from server.jobs.escalation import Escalator
from tests.server.helpers import EventFeeder, rows, seed, settings_for


@pytest.fixture
def settings(database_url: str) -> ServerSettings:
    """Remind every 5 min, backup at 7, supervisor at 10."""
    return settings_for(database_url, escalation={"escalate_after_s": 600,
                                                  "remind_every_s": 300,
                                                  "backup_after_s": 420})


async def _worker(db: Database, name: str, grid: int) -> int:
    return await people.add_worker(db, people.WorkerIn(
        name=name, apprise_urls=[f"json://127.0.0.1:9/{name}"], grid_id=grid), actor="test")


async def ladder(db: Database) -> list[tuple[str, int]]:
    """(purpose, worker_id) of every notification, in order."""
    found = await rows(db, "SELECT purpose, worker_id FROM notifications ORDER BY id")
    return [(r["purpose"], int(r["worker_id"])) for r in found]


def _shift(days: str, starts: str, ends: str) -> Shift:
    return Shift(id=1, grid_id=1, worker_id=1, backup_id=None, days=days, starts=starts,
                 ends=ends, notes=None, created_at=utcnow())


def test_shifts_cover_local_days_and_nights() -> None:
    # 2026-03-02 is a Monday; Asia/Shanghai is UTC+8.
    monday_9 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 local
    monday_23 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00 local
    tuesday_3 = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # Tuesday 03:00 local
    zone = "Asia/Shanghai"
    day = _shift("12345", "08:00", "20:00")
    assert covers(day, monday_9, zone)
    assert not covers(day, monday_23, zone)
    night = _shift("1", "20:00", "08:00")  # Monday night only
    assert covers(night, monday_23, zone)
    assert covers(night, tuesday_3, zone)  # started on Monday
    assert not covers(night, monday_9, zone)
    assert not covers(_shift("2", "20:00", "08:00"), tuesday_3, zone)  # Tuesday's starts at 20
    assert covers(_shift("1234567", "08:00", "08:00"), monday_23, zone)  # a whole day


async def test_off_shift_worker_on_duty_first_then_backup_supervisor_until_ack(
    db: Database, settings: ServerSettings
) -> None:
    s = await seed(db, supervisor_url="json://127.0.0.1:9/supervisor")
    duty, backup = await _worker(db, "duty", s.grid), await _worker(db, "backup", s.grid)
    # The household's own worker (s.worker) has no shift now; "duty" is on all day.
    await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=duty, backup_id=backup,
                                starts="00:00", ends="00:00"), actor="test")
    await EventFeeder(db, settings).send("door-1", EventKind.EXIT, utcnow())
    clock = ManualClock(utcnow())  # after the ingest: deadlines are at most this + delay
    escalator = Escalator(db, settings, clock)
    assert await ladder(db) == [("alert", duty)]
    clock.advance(seconds=301)
    assert (await escalator.tick()).reminded == 1
    clock.advance(seconds=120)  # 7 min: the backup
    result = await escalator.tick()
    assert (result.backed_up, result.reminded, result.escalated) == (1, 0, 0)
    clock.advance(seconds=180)  # 10 min: the supervisor, and a reminder to those told before
    result = await escalator.tick()
    assert (result.backed_up, result.reminded, result.escalated) == (0, 1, 1)
    clock.advance(seconds=300)  # reminders go on, now to the supervisor too
    assert (await escalator.tick()).reminded == 1
    assert await ladder(db) == [
        ("alert", duty), ("reminder", duty), ("backup", backup), ("escalation", s.supervisor),
        ("reminder", duty), ("reminder", backup),
        ("reminder", duty), ("reminder", backup), ("reminder", s.supervisor)]
    backup_note = await rows(db, "SELECT title, body FROM notifications WHERE purpose = 'backup'")
    assert "转交备班" in backup_note[0]["title"]
    assert "duty" in backup_note[0]["title"]
    assert "/a/" in backup_note[0]["body"]  # the backup can acknowledge with one tap too
    incident = (await rows(db, "SELECT id, responder_id, backup_id FROM incidents"))[0]
    assert (incident["responder_id"], incident["backup_id"]) == (duty, backup)

    before = len(await ladder(db))
    await acknowledge_incident(db, int(incident["id"]), actor="backup", clock=clock,
                               worker_id=backup)
    clock.advance(hours=2)
    assert (await escalator.tick()).reminded == 0
    told = (await ladder(db))[before:]
    assert told == [("acknowledged", duty), ("acknowledged", s.supervisor)]
    await resolve_incident(db, int(incident["id"]), actor="李主任", clock=clock,
                           outcome=IncidentOutcome.FALSE_ALARM, note="delivery",
                           worker_id=s.supervisor)
    assert (await ladder(db))[before + 2:] == [("resolved", duty), ("resolved", backup)]
    resolved = await rows(db, "SELECT title, body FROM notifications WHERE purpose = 'resolved' "
                              "ORDER BY id")
    assert "误报" in resolved[0]["title"] or "False alarm" in resolved[0]["title"]
    assert "delivery" in resolved[0]["body"]
    audit = await rows(db, "SELECT action FROM audit_log WHERE action = 'incident.backup'")
    assert len(audit) == 1


async def test_assigned_worker_on_shift_gets_it_with_their_backup(
    db: Database, settings: ServerSettings
) -> None:
    s = await seed(db)
    other, backup = await _worker(db, "other", s.grid), await _worker(db, "backup", s.grid)
    await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=other, starts="00:00", ends="00:00"),
                    actor="test")
    await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=s.worker, backup_id=backup,
                                starts="00:00", ends="00:00"), actor="test")
    await EventFeeder(db, settings).send("door-1", EventKind.EXIT, utcnow())
    assert await ladder(db) == [("alert", s.worker)]
    incident = (await rows(db, "SELECT responder_id, backup_id, backup_at FROM incidents"))[0]
    assert (incident["responder_id"], incident["backup_id"]) == (s.worker, backup)
    assert incident["backup_at"] is not None


async def test_several_instances_tell_the_backup_once(
    database_url: str, settings: ServerSettings
) -> None:
    import asyncio

    from server.db.connect import open_database

    instances = [await open_database(database_url) for _ in range(3)]
    try:
        db = instances[0]
        s = await seed(db)
        backup = await _worker(db, "backup", s.grid)
        await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=s.worker, backup_id=backup,
                                    starts="00:00", ends="00:00"), actor="test")
        await EventFeeder(db, settings).send("door-1", EventKind.EXIT, utcnow())
        clock = ManualClock(utcnow())
        clock.advance(seconds=421)
        results = await asyncio.gather(*(Escalator(i, settings, clock).tick()
                                         for i in instances))
        assert sum(r.backed_up for r in results) == 1
        assert [p for p in await ladder(db) if p[0] == "backup"] == [("backup", backup)]
    finally:
        for instance in instances:
            await instance.close()


async def test_roster_changes_are_checked_and_audited(db: Database) -> None:
    s = await seed(db)
    with pytest.raises(ValueError, match="somebody else"):
        ShiftIn(grid_id=s.grid, worker_id=s.worker, backup_id=s.worker, starts="8:00",
                ends="20:00")
    with pytest.raises(ValueError, match="weekday"):
        ShiftIn(grid_id=s.grid, worker_id=s.worker, days="8", starts="08:00", ends="20:00")
    with pytest.raises(ValueError, match="time of day"):
        ShiftIn(grid_id=s.grid, worker_id=s.worker, starts="25:00", ends="20:00")
    await people.update_worker(db, s.supervisor, people.WorkerUpdate(active=False), actor="t")
    with pytest.raises(InvalidChangeError, match="inactive"):
        await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=s.worker, backup_id=s.supervisor,
                                    starts="08:00", ends="20:00"), actor="t")
    shift = await add_shift(db, ShiftIn(grid_id=s.grid, worker_id=s.worker, days="5,1",
                                        starts="8:00", ends="20:00"), actor="office")
    assert [(x.days, x.starts, x.worker) for x in await list_shifts(db, s.grid)] == [
        ("15", "08:00", "王网格")]
    await remove_shift(db, shift, actor="office")
    assert await list_shifts(db) == []
    audit = await rows(db, "SELECT actor, action FROM audit_log WHERE action LIKE 'roster.%' "
                           "ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit] == [("office", "roster.add"),
                                                          ("office", "roster.remove")]


def test_roster_cli(database_url: str) -> None:
    from tests.server.test_cli import Cli

    cli = Cli(database_url)
    cli("worker", "add", "主任", "--supervisor", "--url", "json://127.0.0.1:9/s")
    cli("grid", "add", "north", "--supervisor", "1")
    cli("worker", "add", "甲", "--grid", "north", "--url", "json://127.0.0.1:9/a")
    cli("worker", "add", "乙", "--grid", "north", "--url", "json://127.0.0.1:9/b")
    out = cli("roster", "add", "--grid", "north", "--worker", "2", "--backup", "3",
              "--days", "12345", "--from", "20:00", "--to", "08:00", "--notes", "nights")
    assert "shift 1" in out
    assert "backup must be somebody else" in cli(
        "roster", "add", "--grid", "north", "--worker", "2", "--backup", "2", "--from", "8:00",
        "--to", "9:00", ok=False)
    listed = cli("roster", "list", "--grid", "north")
    assert "12345" in listed
    assert "20:00" in listed
    assert "甲" in listed
    assert "乙" in listed
    # 2026-03-02 is a Monday: on at 23:00 that day and 03:00 the next, off at noon.
    assert "甲" in cli("roster", "who", "--grid", "north", "--at", "2026-03-02 23:00")
    assert "甲" in cli("roster", "who", "--grid", "north", "--at", "2026-03-03 03:00")
    assert "甲" not in cli("roster", "who", "--grid", "north", "--at", "2026-03-02 12:00")
    cli("roster", "remove", "1")
    assert "甲" not in cli("roster", "list")
    assert "not found" in cli("roster", "remove", "1", ok=False)

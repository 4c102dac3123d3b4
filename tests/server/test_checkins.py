"""Presence check-ins on the server (issue 19 item 2): scheduled at a local time and claimed
once, published as a non-retained command, outcomes read from events through the ingest
path, a missed or unanswered check-in opens one incident. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from broker.messages import EventKind, decode_command
from ground.timeutil import utcnow
from server.clock import ManualClock
from server.db.base import Database
from server.domain.checkins import request_checkin
from server.domain.leaves import LeaveIn, cancel_leave, grant_leave
from server.domain.visits import VisitIn, register_visit
from server.jobs.checkin_watch import CheckinJob
from tests.server.helpers import EventFeeder, rows, scalar, seed, settings_for
from tests.server.test_early_exit import _early, _final
from tests.server.test_timers import Recorder

ZONE = "Asia/Shanghai"


async def test_scheduled_check_ins_outcomes_and_missed_ones(
    db: Database, database_url: str
) -> None:
    settings = settings_for(database_url, notify={"timezone": ZONE},
                            checkins={"times": ["10:00"], "window_s": 60, "answer_grace_s": 30})
    at = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo(ZONE))
    clock = ManualClock(at - timedelta(minutes=5))
    await seed(db)
    await seed(db, device="door-2")
    await seed(db, device="door-3", armed=False)  # not in quarantine: not checked in
    link, other_link = Recorder(), Recorder()
    job = CheckinJob(db, settings, link, clock)
    other = CheckinJob(db, settings.model_copy(update={"instance": "b"}), other_link, clock)
    assert (await job.tick()).scheduled == 0  # first start: 10:00 is scheduled
    clock.set(at + timedelta(seconds=1))
    first = await job.tick()
    assert (first.scheduled, first.published) == (2, 2)
    assert (await other.tick()).scheduled == 0  # claimed once
    assert other_link.sent == []
    commands = {decode_command(t, p).device_id: decode_command(t, p) for t, p, _ in link.sent}
    assert sorted(commands) == ["door-1", "door-2"]
    assert all(not retained for _, _, retained in link.sent)
    assert commands["door-1"].name == "checkin"

    # door-1 answers "present" through the ingest path; door-2 says nothing.
    feeder = EventFeeder(db, settings)
    await feeder.send("door-1", EventKind.CHECKIN, clock.now(), checkin="present",
                      command_id=commands["door-1"].command_id)
    result = await job.tick()
    assert (result.present, result.missed) == (1, 0)
    clock.advance(seconds=60 + 29)
    assert (await job.tick()).missed == 0  # still within the grace
    clock.advance(seconds=2)
    assert (await job.tick()).missed == 1
    assert (await other.tick()).missed == 0
    found = await rows(db, "SELECT device_id, outcome, incident_id FROM checkins ORDER BY id")
    assert [(r["device_id"], r["outcome"], r["incident_id"] is not None) for r in found] == [
        ("door-1", "present", False), ("door-2", "no_answer", True)]
    incidents = await rows(db, "SELECT kind, severity, detail, device_id FROM incidents")
    assert incidents == [{"kind": "missed_checkin", "severity": "high", "detail": "no_answer",
                          "device_id": "door-2"}]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications WHERE incident_id IS NOT NULL "
                            "AND purpose = 'alert'") >= 1


async def test_a_missed_check_in_says_what_happened_in_the_workers_language(
    db: Database, database_url: str
) -> None:
    """The alert names the outcome that happened (in words), not a legend of all of them."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("UTC")))
    chinese = await seed(db)
    english = await seed(db, device="door-2", worker_language="en")
    job = CheckinJob(db, settings, Recorder(), clock)
    for home in (chinese.household, english.household):
        await request_checkin(db, home, actor="test", window_s=60, now=clock.now())
    await job.tick()
    commands = await rows(db, "SELECT device_id, command_id FROM checkins ORDER BY id")
    # door-1 says nobody came; door-2 never answers.
    await EventFeeder(db, settings).send("door-1", EventKind.CHECKIN, clock.now(),
                                         checkin="absent", command_id=commands[0]["command_id"])
    await job.tick()
    clock.advance(seconds=91)
    assert (await job.tick()).missed == 1
    sent = await rows(db, "SELECT w.language, n.title, n.body FROM notifications n "
                          "JOIN workers w ON w.id = n.worker_id WHERE n.purpose = 'alert' "
                          "AND w.role != 'supervisor' ORDER BY n.id")
    assert [(n["language"], n["title"]) for n in sent] == [
        ("zh_CN", "【签到未通过】张三家：无人到门口"),
        ("en", "[Missed check-in] 张三家: Device did not answer")]
    zh, en = sent[0]["body"], sent[1]["body"]
    assert "门口设备响铃后未确认有人在家：无人到门口。" in zh
    assert "After the door chime nobody was confirmed at home: Device did not answer." in en
    for other in ("absent", "left", "no_answer", "有人外出", "设备未回复"):
        assert other not in zh
    for other in ("absent", "left", "no_answer", "Nobody came", "went out"):
        assert other not in en


async def _asked(db: Database, job: CheckinJob, clock: ManualClock, household: int) -> str:
    """A check-in asked of the household's device and sent; its command id."""
    await request_checkin(db, household, actor="east", window_s=60, now=clock.now())
    assert (await job.tick()).published == 1
    [latest] = await rows(db, "SELECT command_id FROM checkins ORDER BY id DESC LIMIT 1")
    return str(latest["command_id"])


async def _checkin_underway(db: Database, database_url: str, **seeded: Any
                            ) -> tuple[CheckinJob, EventFeeder, ManualClock, str]:
    """One seeded household whose check-in was asked and sent 10 s ago: the job, an event
    feeder, the clock and the check-in's command id."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(utcnow())
    home = await seed(db, **seeded)
    job = CheckinJob(db, settings, Recorder(), clock)
    feeder = EventFeeder(db, settings)
    command = await _asked(db, job, clock, home.household)
    clock.advance(seconds=10)
    return job, feeder, clock, command


async def _one_incident_for_one_exit(db: Database) -> int:
    """The household's only incident is the breach, which took the check-in and whose alert
    says it happened during it; returns its id."""
    found = await rows(db, "SELECT id, kind FROM incidents")
    assert [i["kind"] for i in found] == ["breach"]
    breach = int(found[0]["id"])
    checkin = await rows(db, "SELECT outcome, incident_id FROM checkins")
    assert checkin == [{"outcome": "left", "incident_id": breach}]
    alerts = await rows(db, "SELECT w.language, n.title, n.body FROM notifications n "
                            "JOIN workers w ON w.id = n.worker_id WHERE n.purpose = 'alert'")
    assert [a["language"] for a in alerts] == ["zh_CN"]
    assert "此事发生在在家签到期间" in alerts[0]["body"]
    assert "签到未通过" not in alerts[0]["title"]
    return breach


async def test_going_out_during_a_check_in_is_one_incident_exit_reported_first(
    db: Database, database_url: str
) -> None:
    job, feeder, clock, command = await _checkin_underway(db, database_url)
    await feeder.send("door-1", EventKind.EXIT, clock.now())  # the breach, as it happens
    await feeder.send("door-1", EventKind.CHECKIN, clock.now() + timedelta(seconds=1),
                      checkin="left", command_id=command)
    assert (await job.tick()).missed == 1
    breach = await _one_incident_for_one_exit(db)
    clock.advance(seconds=120)  # past the deadline and the grace: nothing more
    assert (await job.tick()).missed == 0
    assert await _one_incident_for_one_exit(db) == breach


async def test_going_out_during_a_check_in_is_one_incident_outcome_reported_first(
    db: Database, database_url: str
) -> None:
    job, feeder, clock, command = await _checkin_underway(db, database_url)
    # The exit's event comes after the check-in's (a v1 exit is sent when the door shut).
    await feeder.send("door-1", EventKind.CHECKIN, clock.now(), checkin="left",
                      command_id=command)
    assert (await job.tick()).missed == 1
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 0  # waits for the breach
    assert [r["outcome"] for r in await rows(db, "SELECT outcome FROM checkins")] == ["left"]
    clock.advance(seconds=20)
    await feeder.send("door-1", EventKind.EXIT, clock.now() - timedelta(seconds=15))
    await job.tick()
    breach = await _one_incident_for_one_exit(db)
    clock.advance(seconds=120)
    await job.tick()
    assert await _one_incident_for_one_exit(db) == breach


async def test_going_out_with_no_breach_is_its_own_missed_check_in(
    db: Database, database_url: str
) -> None:
    """No breach takes the check-in (the exit was never reported as one, or the household
    is not armed): the check-in's own incident says somebody went out."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(utcnow())
    armed = await seed(db)
    unarmed = await seed(db, device="door-2", armed=False)
    job = CheckinJob(db, settings, Recorder(), clock)
    feeder = EventFeeder(db, settings)
    first = await _asked(db, job, clock, armed.household)
    second = await _asked(db, job, clock, unarmed.household)
    clock.advance(seconds=10)
    for device, command in (("door-1", first), ("door-2", second)):
        await feeder.send(device, EventKind.CHECKIN, clock.now(), checkin="left",
                          command_id=command)
    assert (await job.tick()).missed == 2
    # Not armed: no breach will come, its incident opens at once; armed: it waits.
    assert [(r["household_id"], r["kind"], r["detail"]) for r in await rows(
        db, "SELECT household_id, kind, detail FROM incidents")] == [
        (unarmed.household, "missed_checkin", "left")]
    clock.advance(seconds=60 + 29 - 10)
    await job.tick()
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 1
    clock.advance(seconds=2)
    await job.tick()
    assert [(r["household_id"], r["kind"], r["detail"]) for r in await rows(
        db, "SELECT household_id, kind, detail FROM incidents ORDER BY id")] == [
        (unarmed.household, "missed_checkin", "left"), (armed.household, "missed_checkin", "left")]
    titles = [r["title"] for r in await rows(db, "SELECT n.title FROM notifications n JOIN "
                                                 "workers w ON w.id = n.worker_id WHERE "
                                                 "n.purpose = 'alert' AND w.role != 'supervisor'")]
    assert titles == ["【签到未通过】张三家：有人外出"] * 2
    assert await scalar(db, "SELECT COUNT(*) FROM checkins WHERE incident_id IS NULL") == 0


Before = Callable[[Database, EventFeeder, int, datetime], Awaitable[None]]


async def _left_during_check_in(db: Database, database_url: str, *, exit_first: bool,
                                before: Before) -> None:
    """A check-in asked of an armed household, somebody going out during it (its exit and
    its ``left`` outcome, in the order given), after ``before`` (a leave, a visit)."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(utcnow())
    home = await seed(db)
    job = CheckinJob(db, settings, Recorder(), clock)
    feeder = EventFeeder(db, settings)
    await before(db, feeder, home.household, clock.now())
    command = await _asked(db, job, clock, home.household)
    clock.advance(seconds=10)
    sends = [lambda: feeder.send("door-1", EventKind.EXIT, clock.now() - timedelta(seconds=2)),
             lambda: feeder.send("door-1", EventKind.CHECKIN, clock.now(), checkin="left",
                                 command_id=command)]
    for send in sends if exit_first else reversed(sends):
        await send()
        await job.tick()
    clock.advance(seconds=60 + 30 + 1)  # past the deadline and its grace
    assert (await job.tick()).missed == 0


async def _on_leave(db: Database, feeder: EventFeeder, household: int, now: datetime) -> None:
    await grant_leave(db, LeaveIn(household_id=household, starts_at=now,
                                         ends_at=now + timedelta(hours=2), reason="hospital"),
                             actor="east")


async def _visitor_inside(db: Database, feeder: EventFeeder, household: int, now: datetime) -> None:
    await register_visit(db, VisitIn(
        household_id=household, starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1), visitor="刘护士", organisation="社区卫生服务站",
        purpose="核酸采样"), actor="east")
    await feeder.send("door-1", EventKind.ENTRY, now - timedelta(minutes=1))  # came in


@pytest.mark.parametrize("exit_first", [True, False], ids=["exit-first", "outcome-first"])
@pytest.mark.parametrize(("before", "context"), [(_on_leave, "leave"),
                                                 (_visitor_inside, "visit")],
                         ids=["permitted-leave", "registered-visit"])
async def test_going_out_when_leaving_is_allowed_is_no_missed_check_in(
    db: Database, database_url: str, exit_first: bool,
    before: Before, context: str,
) -> None:
    """During a permitted leave or a registered visit going out is allowed: the ``left``
    check-in is recorded with why, and neither it nor the exit opens an incident."""
    await _left_during_check_in(db, database_url, exit_first=exit_first, before=before)
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 0
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 0
    assert await rows(db, "SELECT outcome, context, incident_id FROM checkins") == [
        {"outcome": "left", "context": context, "incident_id": None}]


async def test_a_withdrawn_exit_during_a_check_in_withdraws_the_missed_check_in_too(
    db: Database, database_url: str
) -> None:
    """The breach that took a check-in is withdrawn (the person came straight back in): the
    check-in no longer counts as missed, and the worker is told so with the withdrawal."""
    job, feeder, clock, command = await _checkin_underway(db, database_url,
                                                          worker_language="en")
    episode, started = uuid4(), clock.now() - timedelta(seconds=3)
    await feeder.send("door-1", EventKind.EXIT, clock.now(),
                      **_early(episode, started, clock.now()))
    await feeder.send("door-1", EventKind.CHECKIN, clock.now(), checkin="left",
                      command_id=command)
    await job.tick()
    clock.advance(seconds=5)
    await feeder.send("door-1", EventKind.HANDOVER, clock.now(),
                      **_final(episode, started, clock.now(), "reentry"))
    clock.advance(seconds=120)
    await job.tick()
    [incident] = await rows(db, "SELECT id, kind, severity, verdict FROM incidents")
    assert (incident["kind"], incident["severity"], incident["verdict"]) == (
        "breach", "low", "reentry")
    assert await rows(db, "SELECT outcome, context, incident_id FROM checkins") == [
        {"outcome": "left", "context": "reentry", "incident_id": incident["id"]}]
    bodies = {n["purpose"]: n["body"] for n in await rows(
        db, "SELECT n.purpose, n.body FROM notifications n JOIN workers w "
            "ON w.id = n.worker_id WHERE w.role != 'supervisor'")}
    assert "so that check-in is missed too" in bodies["alert"]
    assert "does not count as missed" in bodies["withdrawn"]
    assert "is missed too" not in bodies["withdrawn"]


async def _leave(db: Database, household: int, starts: datetime, ends: datetime) -> int:
    return await grant_leave(db, LeaveIn(household_id=household, starts_at=starts,
                                         ends_at=ends, reason="hospital"), actor="east")


@pytest.mark.parametrize("outcome", ["absent", "no_answer"])
async def test_nobody_home_during_a_permitted_leave_is_no_missed_check_in(
    db: Database, database_url: str, outcome: str
) -> None:
    """A leave is the household's (it names no member): while one is in force nobody need be
    home, so a check-in nobody answered is recorded with that reason and opens no incident.
    A leave cancelled, or over before the check-in, excuses nothing."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(utcnow())
    now = clock.now()
    on_leave = await seed(db)
    cancelled = await seed(db, device="door-2")
    over = await seed(db, device="door-3")
    # In force from 30 s into the check-in's window (the household set off meanwhile).
    await _leave(db, on_leave.household, now + timedelta(seconds=30), now + timedelta(hours=3))
    await cancel_leave(db, await _leave(db, cancelled.household, now - timedelta(hours=1),
                                        now + timedelta(hours=2)), actor="east")
    await _leave(db, over.household, now - timedelta(hours=3), now - timedelta(minutes=1))
    job = CheckinJob(db, settings, Recorder(), clock)
    feeder = EventFeeder(db, settings)
    homes = (on_leave, cancelled, over)
    commands = [await _asked(db, job, clock, home.household) for home in homes]
    clock.advance(seconds=10)
    if outcome == "absent":
        for home, command in zip(homes, commands, strict=True):
            await feeder.send(home.device, EventKind.CHECKIN, clock.now(), checkin="absent",
                              command_id=command)
    clock.advance(seconds=60 + 30 + 1)  # past the deadline and its grace
    assert (await job.tick()).missed == 3
    assert (await job.tick()).missed == 0
    assert [(r["household_id"], r["kind"], r["detail"]) for r in await rows(
        db, "SELECT household_id, kind, detail FROM incidents ORDER BY household_id")] == [
        (cancelled.household, "missed_checkin", outcome),
        (over.household, "missed_checkin", outcome)]
    found = await rows(db, "SELECT household_id, outcome, context, incident_id FROM checkins "
                           "ORDER BY household_id")
    assert [(r["household_id"], r["outcome"], r["context"], r["incident_id"] is None)
            for r in found] == [(on_leave.household, outcome, "leave", True),
                                (cancelled.household, outcome, None, False),
                                (over.household, outcome, None, False)]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications n JOIN incidents i "
                            "ON i.id = n.incident_id WHERE i.household_id = ?",
                        (on_leave.household,)) == 0


async def test_going_out_with_no_breach_during_a_permitted_leave_is_no_missed_check_in(
    db: Database, database_url: str
) -> None:
    """Somebody went out during a check-in and no breach took it (the household is not
    armed, or the exit was never reported), but the household had a leave in force: the
    ``left`` check-in is recorded with that reason, no incident."""
    settings = settings_for(database_url, checkins={"window_s": 60, "answer_grace_s": 30})
    clock = ManualClock(utcnow())
    armed = await seed(db)
    unarmed = await seed(db, device="door-2", armed=False)
    for home in (armed, unarmed):
        await _leave(db, home.household, clock.now() - timedelta(minutes=5),
                     clock.now() + timedelta(hours=2))
    job = CheckinJob(db, settings, Recorder(), clock)
    feeder = EventFeeder(db, settings)
    commands = [await _asked(db, job, clock, home.household) for home in (armed, unarmed)]
    clock.advance(seconds=10)
    for home, command in zip((armed, unarmed), commands, strict=True):
        await feeder.send(home.device, EventKind.CHECKIN, clock.now(), checkin="left",
                          command_id=command)
    await job.tick()
    clock.advance(seconds=60 + 30 + 1)
    await job.tick()
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 0
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 0
    assert await rows(db, "SELECT outcome, context, incident_id FROM checkins ORDER BY id") == [
        {"outcome": "left", "context": "leave", "incident_id": None}] * 2


@pytest.mark.parametrize("answer", ["no_answer", "absent", "left"])
async def test_an_exit_delivered_after_the_check_in_was_missed_is_still_one_incident(
    db: Database, database_url: str, answer: str
) -> None:
    """The device delivers its exit late (it was offline; the crossing's own time is inside
    the check-in), after the check-in opened its own missed-check-in incident: that incident
    becomes the breach, one incident and one ladder for one person going out. The worker
    already told of the missed check-in is told once that it was somebody going out."""
    job, feeder, clock, command = await _checkin_underway(db, database_url)
    crossed = clock.now() - timedelta(seconds=5)
    if answer != "no_answer":
        await feeder.send("door-1", EventKind.CHECKIN, clock.now(), checkin=answer,
                          command_id=command)
        await job.tick()
    clock.advance(seconds=60 + 30 + 1)  # past the deadline and its grace
    await job.tick()
    [missed] = await rows(db, "SELECT id, kind, detail FROM incidents")
    assert (missed["kind"], missed["detail"]) == ("missed_checkin", answer)
    clock.advance(seconds=600)
    late_exit = feeder.event("door-1", EventKind.EXIT, crossed)
    await feeder.ingestor.process([late_exit])  # the backlog arrives
    await job.tick()
    found = await rows(db, "SELECT id, kind, severity, crossed_at, state FROM incidents")
    assert [(i["id"], i["kind"], i["severity"], i["state"]) for i in found] == [
        (missed["id"], "breach", "high", "open")]
    assert found[0]["crossed_at"] is not None
    assert await rows(db, "SELECT outcome, incident_id FROM checkins") == [
        {"outcome": answer, "incident_id": missed["id"]}]
    assert await scalar(db, "SELECT COUNT(*) FROM incident_events WHERE incident_id = ?",
                        (missed["id"],)) == 1
    alerts = await rows(db, "SELECT n.title, n.body FROM notifications n JOIN workers w "
                            "ON w.id = n.worker_id WHERE n.purpose = 'alert' "
                            "AND w.role != 'supervisor' ORDER BY n.id")
    assert len(alerts) == 2
    assert "签到未通过" in alerts[0]["title"]
    assert "签到未通过" not in alerts[1]["title"]
    assert "此前“签到未通过”的通知说的就是这件事" in alerts[1]["body"]
    # Redelivered, the exit changes nothing (exactly-once ingest).
    sent = await scalar(db, "SELECT COUNT(*) FROM notifications")
    await feeder.ingestor.process([late_exit])
    await job.tick()
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 1
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == sent

"""Quarantine schedule, overdue returns, device offline, data loss, retention (manual clock)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from broker.messages import DeviceState, EventKind, decode_command
from broker.topics import command_topic
from ground.timeutil import utcnow
from server.clock import ManualClock
from server.config import ServerSettings
from server.db.base import Database
from server.db.connect import open_database
from server.domain.audit_log import list_audit, list_warnings
from server.domain.errors import InvalidChangeError
from server.domain.followups import FollowUpIn, record_followup
from server.domain.households import end_quarantine_early, get_household
from server.domain.leaves import LeaveIn, LeaveState, get_leave, grant_leave
from server.jobs.device_watch import DeviceWatch
from server.jobs.retention import PURGED, RetentionJob, purge_due
from server.jobs.schedule import Scheduler
from tests.server.helpers import EventFeeder, rows, scalar, seed, settings_for


class Recorder:
    """Stands in for the MQTT link in unit tests: remembers what was published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Record one publish."""
        self.sent.append((topic, payload, retain))


@pytest.fixture
def settings(database_url: str) -> ServerSettings:
    """Default timers."""
    return settings_for(database_url)


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the real now (ingest stamps receipt times with it)."""
    return ManualClock(utcnow())


async def test_schedule_arms_at_start_and_disarms_at_end(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    start = clock.now() + timedelta(hours=1)
    s = await seed(db, start=start, end=start + timedelta(days=14))
    assert not (await get_household(db, s.household)).armed
    recorder = Recorder()
    scheduler = Scheduler(db, settings, recorder, clock)
    await scheduler.tick()  # the device learns it is disarmed
    assert [(t, json.loads(p)["name"] if p else None, r) for t, p, r in recorder.sent] == [
        (command_topic("door-1", "arm"), None, True),
        (command_topic("door-1", "disarm"), "disarm", True)]
    recorder.sent.clear()
    clock.set(start + timedelta(seconds=1))
    result = await scheduler.tick()
    assert (result.armed, result.published) == (1, 1)
    assert (await get_household(db, s.household)).armed
    topic, payload, retain = recorder.sent[-1]
    assert (topic, retain) == (command_topic("door-1", "arm"), True)
    assert decode_command(topic, payload).name == "arm"
    assert (await scheduler.tick()).published == 0  # already sent
    clock.set(start + timedelta(days=14))
    result = await scheduler.tick()
    assert (result.disarmed, result.published) == (1, 1)
    assert decode_command(*recorder.sent[-1][:2]).name == "disarm"
    actions = [a.action for a in await list_audit(db, actor="schedule")]
    assert actions == ["household.release", "household.disarm", "household.arm"]


async def test_republished_command_keeps_its_id(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    await seed(db)
    first, second = Recorder(), Recorder()
    await Scheduler(db, settings, first, clock).publish_pending()
    async with db.transaction() as tx:  # as if the server died before marking it sent
        await tx.execute("UPDATE devices SET arm_published_at = NULL")
    await Scheduler(db, settings, second, clock).publish_pending()
    assert first.sent == second.sent


async def test_ending_quarantine_early_is_audited_and_disarms(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    s = await seed(db, start=clock.now() - timedelta(days=2),
                   end=clock.now() + timedelta(days=12))
    assert (await get_household(db, s.household)).armed
    with pytest.raises(InvalidChangeError, match="reason_required"):
        await end_quarantine_early(db, s.household, actor="sup", reason=" ", clock=clock)
    ended = await end_quarantine_early(db, s.household, actor="sup", reason="negative test",
                                       clock=clock)
    assert not ended.armed
    assert ended.quarantine_end == clock.now()
    entry = (await list_audit(db, action_prefix="household.end_quarantine_early"))[0]
    assert (entry.actor, entry.subject) == ("sup", f"household:{s.household}")
    assert "negative test" in (entry.detail or "")
    recorder = Recorder()
    await Scheduler(db, settings, recorder, clock).tick()
    assert decode_command(*recorder.sent[-1][:2]).name == "disarm"
    with pytest.raises(InvalidChangeError, match="not_in_quarantine"):
        await end_quarantine_early(db, s.household, actor="sup", reason="again", clock=clock)


async def test_no_entry_before_the_leave_ends_is_an_overdue_return(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    s = await seed(db)
    now = clock.now()
    leave_id = await grant_leave(db, LeaveIn(household_id=s.household, starts_at=now,
                                             ends_at=now + timedelta(hours=2),
                                             reason="hospital"), actor="w")
    await EventFeeder(db, settings).send("door-1", EventKind.EXIT, now + timedelta(minutes=1))
    scheduler = Scheduler(db, settings, None, clock)
    clock.advance(hours=1)
    assert (await scheduler.tick()).overdue == 0
    clock.advance(hours=1, seconds=1)
    assert (await scheduler.tick()).overdue == 1
    assert (await scheduler.tick()).overdue == 0
    leave = await get_leave(db, leave_id)
    assert leave.state is LeaveState.OVERDUE
    found = await rows(db, "SELECT id, kind, leave_id FROM incidents")
    assert [(r["kind"], r["leave_id"]) for r in found] == [("overdue_return", leave_id)]
    assert leave.incident_id == found[0]["id"]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1
    # Coming back late closes the leave as returned, and opens nothing more.
    await EventFeeder(db, settings).send("door-1", EventKind.ENTRY, clock.now(), seq=2)
    assert (await get_leave(db, leave_id)).state is LeaveState.RETURNED
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 1


async def test_offline_by_last_will_after_grace_then_back_online(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    await seed(db)
    feeder = EventFeeder(db, settings)
    watch = DeviceWatch(db, settings, clock)
    await feeder.heartbeat("door-1", clock.now())
    await feeder.status("door-1", DeviceState.OFFLINE, clock.now())
    clock.advance(seconds=30)
    assert (await watch.tick()).offline == 0  # within the grace
    clock.advance(seconds=31)
    assert (await watch.tick()).offline == 1
    assert (await watch.tick()).offline == 0  # one incident per outage
    found = await rows(db, "SELECT kind, severity, detail FROM incidents")
    assert (found[0]["kind"], found[0]["severity"]) == ("device_offline", "medium")
    assert "Last Will" in found[0]["detail"]
    await feeder.status("door-1", DeviceState.ONLINE, clock.now())
    assert (await watch.tick()).back_online == 1
    await feeder.status("door-1", DeviceState.OFFLINE, clock.now())
    clock.advance(seconds=61)
    assert (await watch.tick()).offline == 1  # a new outage, a new incident
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 2


async def test_offline_by_missing_heartbeats_only_while_armed(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    await seed(db)
    await seed(db, device="door-2", armed=False)
    feeder = EventFeeder(db, settings)
    for device in ("door-1", "door-2"):
        await feeder.heartbeat(device, clock.now())
    watch = DeviceWatch(db, settings, clock)
    clock.advance(seconds=179)
    assert (await watch.tick()).offline == 0
    clock.advance(seconds=2)
    assert (await watch.tick()).offline == 1
    assert [r["device_id"] for r in await rows(db, "SELECT device_id FROM incidents")] == [
        "door-1"]


async def test_seq_gap_that_never_fills_is_a_data_loss_warning(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    s = await seed(db)
    feeder = EventFeeder(db, settings)
    await feeder.send("door-1", EventKind.HANDOVER, clock.now(), seq=1)
    await feeder.send("door-1", EventKind.HANDOVER, clock.now(), seq=4)
    await feeder.send("door-1", EventKind.HANDOVER, clock.now(), seq=9)
    await feeder.send("door-1", EventKind.HANDOVER, clock.now(), seq=3)  # late, fills part
    watch = DeviceWatch(db, settings, clock)
    assert (await watch.tick()).data_loss == 0
    clock.advance(seconds=301)
    assert (await watch.tick()).data_loss == 2
    assert (await watch.tick()).data_loss == 0
    warnings = await list_warnings(db)
    assert {w.kind for w in warnings} == {"data_loss"}
    assert {w.household_id for w in warnings} == {s.household}
    assert sorted(w.detail.split(" ")[1] for w in warnings) == ["2..2", "5..8"]


async def test_retention_purges_personal_data_after_the_period(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    end = clock.now() - timedelta(days=91)
    old = await seed(db, start=end - timedelta(days=14), end=end)
    recent = await seed(db, device="door-2", start=clock.now() - timedelta(days=20),
                        end=clock.now() - timedelta(days=5))
    for s in (old, recent):
        await record_followup(db, FollowUpIn(household_id=s.household, day=end.date(),
                                             temperatures={"张三": 36.6}), actor="w")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO events (device_id, seq, event_id, type, kind, device_time, "
                         "received_at, payload, household_id) VALUES ('door-1', 1, 'e1', "
                         "'event', 'exit', 't', 't', '{}', ?)", (old.household,))
        await tx.execute("INSERT INTO snapshots (event_id, device_id, taken_at, received_at, "
                         "jpeg) VALUES ('e1', 'door-1', 't', 't', ?)", (b"\xff\xd8jpeg",))
    dry = await purge_due(db, days=90, actor="ops", clock=clock, dry_run=True)
    assert (dry.households, dry.snapshots, dry.followups) == ([old.household], 1, 1)
    assert await scalar(db, "SELECT COUNT(*) FROM snapshots") == 1
    report = await purge_due(db, days=90, actor="ops", clock=clock)
    assert (report.households, report.snapshots, report.followups) == ([old.household], 1, 1)
    purged = await get_household(db, old.household)
    assert (purged.address, purged.members, purged.purged_at) == (PURGED, [], clock.now())
    assert purged.name.startswith(PURGED)
    kept = await get_household(db, recent.household)
    assert kept.address == "幸福路 8 号 3-502"
    assert await scalar(db, "SELECT COUNT(*) FROM followups") == 1
    assert await scalar(db, "SELECT COUNT(*) FROM events") == 1  # statistics stay
    entry = (await list_audit(db, action_prefix="retention.purge"))[0]
    assert (entry.actor, entry.subject) == ("ops", f"household:{old.household}")
    assert "1 snapshots, 1 follow-ups" in (entry.detail or "")
    assert (await purge_due(db, days=90, actor="ops", clock=clock)).households == []


async def test_retention_job_runs_once_per_interval_across_instances_and_restarts(
    database_url: str, settings: ServerSettings, clock: ManualClock
) -> None:
    instances = [await open_database(database_url) for _ in range(3)]
    try:
        end = clock.now() - timedelta(days=100)
        await seed(instances[0], start=end - timedelta(days=14), end=end)
        jobs = [RetentionJob(db, settings, clock) for db in instances]
        reports = await asyncio.gather(*(job.run_if_due() for job in jobs))
        assert sum(r is not None for r in reports) == 1
        assert await jobs[0].run_if_due() is None  # not due again for an hour
        clock.advance(seconds=3601)
        # "Restarted": a fresh job object finds the persisted next run time.
        assert await RetentionJob(instances[1], settings, clock).run_if_due() is not None
        assert len(await list_audit(instances[0], action_prefix="retention.purge")) == 1
    finally:
        for db in instances:
            await db.close()


def test_clock_start_is_aware(clock: ManualClock) -> None:
    assert isinstance(clock.now(), datetime)
    assert clock.now().tzinfo is not None


async def test_arming_by_hand_only_without_a_period(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    from server.domain.households import HouseholdUpdate, update_household

    manual = await seed(db, armed=False)
    scheduled = await seed(db, device="door-2", start=clock.now() - timedelta(days=1),
                           end=clock.now() + timedelta(days=13))
    await update_household(db, manual.household, HouseholdUpdate(armed=True), actor="sup")
    assert (await get_household(db, manual.household)).armed
    recorder = Recorder()
    await Scheduler(db, settings, recorder, clock).tick()
    assert decode_command(*[s for s in recorder.sent if s[0].endswith("door-1/arm")][-1][:2]
                          ).name == "arm"
    with pytest.raises(InvalidChangeError, match="armed_by_schedule"):
        await update_household(db, scheduled.household, HouseholdUpdate(armed=False),
                               actor="sup")

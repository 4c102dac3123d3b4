"""Every rule of issue 6 §2, through the real ingest path, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from broker.messages import EventKind
from server.clock import ManualClock
from server.db.base import Database
from server.domain import devices
from server.domain.leaves import LeaveIn, LeaveState, get_leave, grant_leave
from tests.server.helpers import EventFeeder, rows, scalar, seed, settings_for


async def incidents(db: Database) -> list[dict[str, object]]:
    """Incidents as (kind, severity, state) rows, oldest first."""
    return await rows(db, "SELECT id, kind, severity, state FROM incidents ORDER BY id")


async def test_exit_while_armed_is_a_breach_notified_to_the_worker(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db)
    result = await feeder.send("door-1", EventKind.EXIT, now)
    assert len(result.incidents_opened) == 1
    assert [(i["kind"], i["severity"], i["state"]) for i in await incidents(db)] == [
        ("breach", "high", "open")]
    notes = await rows(db, "SELECT worker_id, title, body, purpose FROM notifications")
    assert len(notes) == 1
    assert int(notes[0]["worker_id"]) == s.worker
    assert notes[0]["purpose"] == "alert"
    assert "违规外出" in notes[0]["title"]
    assert "幸福路 8 号 3-502" in notes[0]["body"]
    assert "/incidents/" in notes[0]["body"]
    # The event remembers its household, and the incident lists it.
    assert await scalar(db, "SELECT household_id FROM events") == s.household
    assert await scalar(db, "SELECT COUNT(*) FROM incident_events") == 1


async def test_english_worker_gets_english_text(db: Database, feeder: EventFeeder,
                                                now: datetime) -> None:
    await seed(db, worker_language="en")
    await feeder.send("door-1", EventKind.EXIT, now)
    title = (await rows(db, "SELECT title FROM notifications"))[0]["title"]
    assert title.startswith("[Quarantine alert] Breach")


async def test_disarmed_household_makes_no_incidents(db: Database, feeder: EventFeeder,
                                                     now: datetime) -> None:
    await seed(db, armed=False)
    for kind in (EventKind.EXIT, EventKind.ENTRY, EventKind.DOOR_OPEN_UNVERIFIED,
                 EventKind.TAMPER):
        await feeder.send("door-1", kind, now)
    assert await incidents(db) == []
    assert await scalar(db, "SELECT COUNT(*) FROM events") == 4


async def test_household_outside_its_period_is_disarmed(db: Database, feeder: EventFeeder,
                                                        now: datetime) -> None:
    await seed(db, start=now + timedelta(days=1), end=now + timedelta(days=15))
    await feeder.send("door-1", EventKind.EXIT, now)
    assert await incidents(db) == []


async def test_exit_during_permitted_leave_is_logged_and_return_closes_it(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db)
    leave_id = await grant_leave(db, LeaveIn(household_id=s.household, starts_at=now,
                                             ends_at=now + timedelta(hours=2),
                                             reason="hospital"), actor="worker")
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=5))
    assert await incidents(db) == []
    leave = await get_leave(db, leave_id)
    assert leave.state is LeaveState.OUT
    assert leave.exited_at == now + timedelta(minutes=5)
    await feeder.send("door-1", EventKind.ENTRY, now + timedelta(minutes=50))
    assert (await get_leave(db, leave_id)).state is LeaveState.RETURNED
    assert await incidents(db) == []
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 0


async def test_exit_outside_the_leave_window_is_a_breach(db: Database, feeder: EventFeeder,
                                                         now: datetime) -> None:
    s = await seed(db)
    await grant_leave(db, LeaveIn(household_id=s.household, starts_at=now + timedelta(hours=1),
                                  ends_at=now + timedelta(hours=2), reason="test"), actor="w")
    await feeder.send("door-1", EventKind.EXIT, now)
    assert [i["kind"] for i in await incidents(db)] == ["breach"]


async def test_entry_without_earlier_exit_is_a_low_severity_visitor(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.ENTRY, now)
    found = await rows(db, "SELECT kind, severity, escalate_at, remind_at FROM incidents")
    assert found == [{"kind": "visitor", "severity": "low", "escalate_at": None,
                      "remind_at": None}]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1


async def test_entry_after_an_exit_is_a_return_folded_into_the_breach(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.EXIT, now)
    await feeder.send("door-1", EventKind.ENTRY, now + timedelta(minutes=3))
    assert [i["kind"] for i in await incidents(db)] == ["breach"]
    assert await scalar(db, "SELECT COUNT(*) FROM incident_events") == 2
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1


async def test_unverified_door_opening_is_a_possible_breach(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.DOOR_OPEN_UNVERIFIED, now)
    assert [(i["kind"], i["severity"]) for i in await incidents(db)] == [
        ("possible_breach", "high")]


async def test_tamper_event_is_a_tamper_incident(db: Database, feeder: EventFeeder,
                                                 now: datetime) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.TAMPER, now)
    assert [i["kind"] for i in await incidents(db)] == ["tamper"]


async def test_handover_and_door_events_make_no_incident(db: Database, feeder: EventFeeder,
                                                         now: datetime) -> None:
    await seed(db)
    for kind in (EventKind.HANDOVER, EventKind.DOOR_OPEN, EventKind.DOOR_CLOSE):
        await feeder.send("door-1", kind, now)
    assert await incidents(db) == []


async def test_events_within_the_window_fold_into_one_incident(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.EXIT, now)
    await feeder.send("door-1", EventKind.DOOR_OPEN_UNVERIFIED, now + timedelta(minutes=2))
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=9))
    assert [i["kind"] for i in await incidents(db)] == ["breach"]
    assert await scalar(db, "SELECT COUNT(*) FROM incident_events") == 3
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1
    # Beyond the window: a new incident.
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=25))
    assert [i["kind"] for i in await incidents(db)] == ["breach", "breach"]


async def test_visitor_turning_into_breach_upgrades_and_notifies_again(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.ENTRY, now)
    await feeder.send("door-1", EventKind.DOOR_OPEN_UNVERIFIED, now + timedelta(minutes=1))
    found = await rows(db, "SELECT kind, severity, escalate_at FROM incidents")
    assert len(found) == 1
    assert (found[0]["kind"], found[0]["severity"]) == ("possible_breach", "high")
    assert found[0]["escalate_at"] is not None
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 2


async def test_redelivered_event_opens_nothing_new(db: Database, feeder: EventFeeder,
                                                   now: datetime) -> None:
    await seed(db)
    message = feeder.event("door-1", EventKind.EXIT, now)
    first = await feeder.ingestor.process([message])
    again = await feeder.ingestor.process([message])
    assert (first.stored, again.stored, again.duplicates) == (1, 0, 1)
    assert len(await incidents(db)) == 1
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1


async def test_seq_gap_is_recorded(db: Database, feeder: EventFeeder, now: datetime) -> None:
    await seed(db)
    await feeder.send("door-1", EventKind.HANDOVER, now, seq=1)
    await feeder.send("door-1", EventKind.HANDOVER, now, seq=5)
    assert await rows(db, "SELECT first_seq, last_seq FROM seq_gaps") == [
        {"first_seq": 2, "last_seq": 4}]


async def test_replaced_device_keeps_the_household_history(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db, start=now - timedelta(days=1), end=now + timedelta(days=13))
    await feeder.send("door-1", EventKind.EXIT, now)
    await devices.register_device(db, "door-2", actor="installer")
    await devices.replace_device(db, "door-1", "door-2", actor="installer", reason="broken")
    await feeder.send("door-2", EventKind.EXIT, now + timedelta(hours=1))
    assert await scalar(db, "SELECT COUNT(*) FROM events WHERE household_id = ?",
                        (s.household,)) == 2
    assert len(await incidents(db)) == 2
    history = await devices.assignment_history(db, household_id=s.household)
    assert [(a.device_id, a.unassigned_at is None) for a in history] == [
        ("door-1", False), ("door-2", True)]
    old = await devices.get_device(db, "door-1")
    assert (old.household_id, old.arm_command) == (None, "disarm")
    new = await devices.get_device(db, "door-2")
    assert (new.household_id, new.arm_command) == (s.household, "arm")


def test_manual_clock_is_usable() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.advance(minutes=5) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


async def test_two_instances_fold_one_households_events_into_one_incident(
    database_url: str, now: datetime
) -> None:
    from server.db.connect import open_database

    first, second = await open_database(database_url), await open_database(database_url)
    try:
        s = await seed(first)
        await devices.register_device(first, "door-2", household_id=s.household, actor="t")
        settings = settings_for(database_url)
        feeders = [EventFeeder(first, settings), EventFeeder(second, settings)]
        for _ in range(5):
            await asyncio.gather(
                feeders[0].send("door-1", EventKind.EXIT, now),
                feeders[1].send("door-2", EventKind.EXIT, now),
            )
        assert len(await incidents(first)) == 1
        assert await scalar(first, "SELECT COUNT(*) FROM incident_events") == 10
        assert await scalar(first, "SELECT COUNT(*) FROM notifications") == 1
    finally:
        await first.close()
        await second.close()

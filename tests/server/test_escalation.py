"""Reminders and escalation from persisted deadlines, with an injectable clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from broker.messages import EventKind
from ground.timeutil import from_ts, utcnow
from server.clock import ManualClock
from server.config import ServerSettings
from server.db.base import Database
from server.db.connect import open_database
from server.domain.incidents import acknowledge_incident
from server.jobs.escalation import Escalator
from tests.server.helpers import EventFeeder, Seeded, rows, scalar, seed, settings_for


@pytest.fixture
def settings(database_url: str) -> ServerSettings:
    """Escalate after 10 minutes, remind every 5."""
    return settings_for(database_url, escalation={"escalate_after_s": 600,
                                                  "remind_every_s": 300})


@pytest.fixture
def clock() -> ManualClock:
    """Starts at the real now: rules set deadlines from the real clock at ingest."""
    return ManualClock(utcnow())


async def open_breach(db: Database, settings: ServerSettings,
                      clock: ManualClock | None = None) -> tuple[Seeded, int]:
    """Seed and open one breach through ingest.

    Ingest sets the deadlines from the real time it ran at, which on a loaded
    machine can be seconds after ``clock`` was made: the clock is moved to
    that moment, so "advance 301 s" means 301 s after the deadlines' base.
    """
    s = await seed(db, supervisor_url="json://127.0.0.1:9/supervisor")
    result = await EventFeeder(db, settings).send("door-1", EventKind.EXIT, utcnow())
    if clock is not None:
        row = await db.fetch_one("SELECT remind_at FROM incidents WHERE id = ?",
                                 (result.incidents_opened[0],))
        assert row is not None
        base = from_ts(row["remind_at"]) - timedelta(seconds=settings.escalation.remind_every_s)
        if base > clock.now():
            clock.advance(seconds=(base - clock.now()).total_seconds())
    return s, result.incidents_opened[0]


async def purposes(db: Database) -> list[tuple[str, int]]:
    """(purpose, worker_id) of every notification, in order."""
    found = await rows(db, "SELECT purpose, worker_id FROM notifications ORDER BY id")
    return [(r["purpose"], int(r["worker_id"])) for r in found]


async def test_reminders_then_escalation_until_acknowledged(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    s, incident_id = await open_breach(db, settings, clock)
    escalator = Escalator(db, settings, clock)
    assert (await escalator.tick()).reminded == 0
    clock.advance(seconds=299)
    assert (await escalator.tick()).reminded == 0
    clock.advance(seconds=2)  # 5 minutes: first reminder to the worker
    result = await escalator.tick()
    assert (result.reminded, result.escalated) == (1, 0)
    clock.advance(seconds=300)  # 10 minutes: second reminder and the supervisor
    result = await escalator.tick()
    assert (result.reminded, result.escalated) == (1, 1)
    assert (await escalator.tick()).escalated == 0  # once only
    assert await purposes(db) == [("alert", s.worker), ("reminder", s.worker),
                                  ("escalation", s.supervisor), ("reminder", s.worker)]
    escalation = await rows(db, "SELECT title, url FROM notifications WHERE purpose = "
                                "'escalation'")
    assert escalation[0]["title"].startswith("[Escalated] Breach")  # supervisor reads English
    assert escalation[0]["url"].endswith("/supervisor")
    reminder = await rows(db, "SELECT title FROM notifications WHERE purpose = 'reminder' "
                              "ORDER BY id")
    assert "第1次" in reminder[0]["title"]
    assert "第2次" in reminder[1]["title"]
    await acknowledge_incident(db, incident_id, actor="王网格", clock=clock,
                               worker_id=s.worker)
    clock.advance(hours=5)
    result = await escalator.tick()
    assert (result.reminded, result.escalated) == (0, 0)
    # Everyone notified is told it was acknowledged, except the worker who did it.
    assert (await purposes(db))[4:] == [("acknowledged", s.supervisor)]


async def test_acknowledged_in_time_never_escalates(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    s, incident_id = await open_breach(db, settings, clock)
    escalator = Escalator(db, settings, clock)
    clock.advance(seconds=200)
    await acknowledge_incident(db, incident_id, actor="w", clock=clock, worker_id=s.worker)
    clock.advance(hours=1)
    assert (await escalator.tick()).escalated == 0
    assert await purposes(db) == [("alert", s.worker)]


async def test_missed_reminders_while_down_are_sent_once(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    await open_breach(db, settings, clock)
    escalator = Escalator(db, settings, clock)
    clock.advance(seconds=3 * 300 + 10)  # three periods passed while no server ran
    result = await escalator.tick()
    assert result.reminded == 1
    assert (await escalator.tick()).reminded == 0
    remind_at = await rows(db, "SELECT remind_at FROM incidents")
    assert remind_at[0]["remind_at"] > clock.ts()


async def test_deadlines_survive_a_restart(
    database_url: str, settings: ServerSettings, clock: ManualClock
) -> None:
    first = await open_database(database_url)
    try:
        await open_breach(first, settings, clock)
    finally:
        await first.close()
    clock.advance(seconds=601)
    second = await open_database(database_url)  # "the server started again"
    try:
        result = await Escalator(second, settings, clock).tick()
        assert (result.reminded, result.escalated) == (1, 1)
    finally:
        await second.close()


async def test_several_instances_escalate_once(
    database_url: str, settings: ServerSettings, clock: ManualClock
) -> None:
    instances = [await open_database(database_url) for _ in range(3)]
    try:
        await open_breach(instances[0], settings, clock)
        clock.advance(seconds=601)
        results = await asyncio.gather(*(Escalator(db, settings, clock).tick()
                                         for db in instances))
        assert sum(r.escalated for r in results) == 1
        assert sum(r.reminded for r in results) == 1
        assert await scalar(instances[0], "SELECT COUNT(*) FROM notifications") == 3
    finally:
        for db in instances:
            await db.close()


async def test_low_severity_visitor_is_never_escalated(
    db: Database, settings: ServerSettings, clock: ManualClock
) -> None:
    await seed(db)
    await EventFeeder(db, settings).send("door-1", EventKind.ENTRY, utcnow())
    clock.advance(hours=2)
    result = await Escalator(db, settings, clock).tick()
    assert (result.reminded, result.escalated) == (0, 0)

"""Follow-ups per household member (issue 19, item 1), on SQLite and PostgreSQL.

Legacy one-reading rows are moved to the member when that is certain; a
fever opens one incident routed to the health station's worker (or the grid
worker when none is configured); the daily reminder runs once across
instances and lists only the households not yet visited.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ground.timeutil import now_ts
from server.clock import ManualClock
from server.db import migrate as migration_package
from server.db.base import Database
from server.db.connect import open_database
from server.domain import households, people
from server.domain.errors import InvalidChangeError
from server.domain.followups import (
    FeverRule,
    FollowUpIn,
    FollowUpUpdate,
    list_followups,
    record_followup,
    update_followup,
)
from server.jobs.followup_reminder import FollowUpReminder
from tests.server.helpers import rows, scalar, seed, settings_for

DAY = date(2026, 3, 1)


async def test_legacy_readings_move_to_the_only_member(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = migration_package.migrations()
    monkeypatch.setattr(migration_package, "migrations",
                        lambda: [m for m in everything if m[0] < 48])
    db = await open_database(database_url)
    try:
        async with db.transaction() as tx:
            ids = {}
            for name, members in (("one", '["张三"]'), ("two", '["甲", "乙"]'), ("none", "[]")):
                row = await tx.fetch_one(
                    "INSERT INTO households (name, address, members, armed, created_at, "
                    "updated_at) VALUES (?, 'x', ?, 1, ?, ?) RETURNING id",
                    (name, members, now_ts(), now_ts()))
                assert row is not None
                ids[name] = int(row["id"])
            for name, temps in (("one", '{"住户": 36.6}'), ("two", '{"household": 37.0}'),
                                ("none", '{"?": 36.4}'), ("one", '{"张三": 36.9}')):
                await tx.execute(
                    "INSERT INTO followups (household_id, day, recorded_by, recorded_at, "
                    "temperatures, symptoms) VALUES (?, '2026-02-01', 'w', ?, ?, '咳嗽')",
                    (ids[name], now_ts(), temps))
        monkeypatch.setattr(migration_package, "migrations", lambda: everything)
        await migration_package.migrate(db)
        found = {(f.household_id, tuple(f.temperatures.items()), f.symptoms)
                 for f in await list_followups(db)}
        assert found == {
            (ids["one"], (("张三", 36.6),), "咳嗽"),
            (ids["one"], (("张三", 36.9),), "咳嗽"),
            (ids["two"], (("household", 37.0),), "咳嗽"),
            (ids["none"], (("household", 36.4),), "咳嗽"),
        }
    finally:
        await db.close()


async def test_fever_opens_one_incident_for_the_health_station(db: Database) -> None:
    seeded = await seed(db)
    health = await people.add_worker(db, people.WorkerIn(
        name="卫生站 刘医生", language="en", apprise_urls=["json://127.0.0.1:9/health"]),
        actor="test")
    rule = FeverRule(threshold_c=37.3, health_worker_id=health)
    # Normal readings: no incident.
    await record_followup(db, FollowUpIn(household_id=seeded.household, day=DAY,
                                         temperatures={"张三": 36.6, "李四": 37.2}),
                          actor="王网格", rule=rule)
    assert await scalar(db, "SELECT COUNT(*) FROM incidents WHERE kind = 'fever'") == 0
    followup_id = await record_followup(db, FollowUpIn(
        household_id=seeded.household, day=DAY, temperatures={"张三": 36.6, "李四": 37.3},
        member_symptoms={"李四": "咳嗽，乏力"}), actor="王网格", rule=rule)
    incident = (await rows(db, "SELECT * FROM incidents WHERE kind = 'fever'"))[0]
    assert incident["household_id"] == seeded.household
    assert incident["device_id"] is None
    assert incident["severity"] == "medium"
    assert incident["detail"] == "李四 37.3 °C"
    stored = (await list_followups(db, household_id=seeded.household))[0]
    assert stored.id == followup_id
    assert stored.fever_incident_id == incident["id"]
    assert stored.member_symptoms == {"李四": "咳嗽，乏力"}
    sent = await rows(db, "SELECT worker_id, title, body FROM notifications "
                          "WHERE incident_id = ?", (incident["id"],))
    assert [s["worker_id"] for s in sent] == [health]  # not the grid worker
    assert sent[0]["title"] == "[Fever] 张三家: 李四 37.3 °C"
    assert "Temperature at follow-up: 李四 37.3 °C" in sent[0]["body"]
    assert "/a/" in sent[0]["body"]  # one-tap acknowledge link
    assert await scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'followup.fever'") == 1
    # A correction does not open a second one.
    await update_followup(db, followup_id, FollowUpUpdate(temperatures={"李四": 38.0}),
                          actor="王网格", rule=rule)
    assert await scalar(db, "SELECT COUNT(*) FROM incidents WHERE kind = 'fever'") == 1


async def test_fever_goes_to_the_grid_worker_without_a_health_station(db: Database) -> None:
    seeded = await seed(db)
    first = await record_followup(db, FollowUpIn(household_id=seeded.household, day=DAY,
                                                 temperatures={"张三": 36.5}),
                                  actor="王网格", rule=FeverRule(threshold_c=37.3))
    # A corrected reading that is a fever opens the incident then.
    await update_followup(db, first, FollowUpUpdate(temperatures={"张三": 38.1}),
                          actor="王网格", rule=FeverRule(threshold_c=37.3))
    sent = await rows(db, "SELECT n.worker_id, n.title FROM notifications n "
                          "JOIN incidents i ON i.id = n.incident_id WHERE i.kind = 'fever'")
    assert [s["worker_id"] for s in sent] == [seeded.worker]
    assert sent[0]["title"] == "【发热提醒】张三家：张三 38.1 °C"  # the worker reads Chinese


async def test_readings_must_name_members(db: Database) -> None:
    seeded = await seed(db)
    with pytest.raises(InvalidChangeError) as refused:
        await record_followup(db, FollowUpIn(household_id=seeded.household, day=DAY,
                                             temperatures={"王五": 36.5}), actor="w")
    assert refused.value.reason == "unknown_member"
    plain = await households.add_household(db, households.HouseholdIn(
        name="无名单", address="y"), actor="test")
    await record_followup(db, FollowUpIn(household_id=plain, day=DAY,
                                         temperatures={"household": 36.5}), actor="w")


async def test_reminder_once_a_day_across_instances(db: Database, database_url: str,
                                                    tmp_path: Path) -> None:
    seeded = await seed(db)  # 张三家, armed, worker 王网格
    visited = await households.add_household(db, households.HouseholdIn(
        name="李家", address="z", worker_id=seeded.worker, members=["李"]), actor="test")
    await households.add_household(db, households.HouseholdIn(
        name="空房", address="q", worker_id=seeded.worker, armed=False), actor="test")
    settings = settings_for(database_url, followups={"remind_at": "16:00"},
                            notify={"timezone": "Asia/Shanghai"})
    # 15:59 in Shanghai on DAY.
    clock = ManualClock(datetime(2026, 3, 1, 7, 59, tzinfo=UTC))
    one, two = FollowUpReminder(db, settings, clock), FollowUpReminder(db, settings, clock)
    await record_followup(db, FollowUpIn(household_id=visited, day=DAY,
                                         temperatures={"李": 36.4}), actor="王网格")
    assert await one.run_if_due() is None
    clock.advance(minutes=1)
    report = await one.run_if_due()
    assert report is not None
    assert report.day == DAY
    assert report.workers == [seeded.worker]
    assert report.households == 1
    assert await two.run_if_due() is None  # the other instance: already claimed
    sent = await rows(db, "SELECT worker_id, title, body, incident_id FROM notifications "
                          "WHERE purpose = 'followup_reminder'")
    assert len(sent) == 1
    assert sent[0]["incident_id"] is None
    assert sent[0]["title"] == "【随访提醒】今天还有 1 户未随访"
    assert "张三家" in sent[0]["body"]
    assert "李家" not in sent[0]["body"]
    assert "空房" not in sent[0]["body"]
    clock.advance(hours=23, minutes=59)
    assert await two.run_if_due() is None
    clock.advance(minutes=1)
    again = await two.run_if_due()
    assert again is not None
    assert again.day == DAY + timedelta(days=1)
    assert again.households == 2  # nobody was visited on the second day


async def test_first_start_after_the_hour_waits_for_the_next_day(
    db: Database, database_url: str
) -> None:
    await seed(db)
    settings = settings_for(database_url, followups={"remind_at": "16:00"},
                            notify={"timezone": "Asia/Shanghai"})
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))  # 17:00 in Shanghai
    reminder = FollowUpReminder(db, settings, clock)
    assert await reminder.run_if_due() is None  # no reminder at once on a first start
    clock.advance(hours=22, minutes=59)
    assert await reminder.run_if_due() is None
    clock.advance(minutes=1)  # 16:00 the next day
    report = await reminder.run_if_due()
    assert report is not None
    assert report.day == DAY + timedelta(days=1)

"""Alert storms become one grouped incident; silenced households are recorded, not notified."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from broker.messages import DeviceState, EventKind
from ground.timeutil import utcnow
from server.clock import ManualClock
from server.config import ServerSettings
from server.db.base import Database
from server.db.connect import open_database
from server.domain import devices, households, people
from server.domain.errors import InvalidChangeError
from server.domain.incident_opening import IncidentOutcome
from server.domain.incidents import acknowledge_incident, resolve_incident
from server.domain.roster import ShiftIn, add_shift
from server.domain.silences import SilenceIn, lift_silence, list_silences, silence_household
from server.jobs.device_watch import DeviceWatch
from server.jobs.escalation import Escalator
from server.web.queries import IncidentFilter, incident_detail, incident_rows
from server.web.users import Role, User
from tests.server.helpers import EventFeeder, rows, scalar, seed, settings_for


@pytest.fixture
def settings(database_url: str) -> ServerSettings:
    """Offline after 60 s of Last Will; 4 devices of a building within 5 min are a storm."""
    return settings_for(database_url, storm={"threshold": 4, "window_s": 300, "hold_s": 30})


async def block(db: Database, count: int, *, building: str | None = "3号楼",
                first: int = 1) -> tuple[int, list[int]]:
    """A grid with one worker and ``count`` households (door-N each) in ``building``."""
    grid = await people.add_grid(db, people.GridIn(name=f"g{first}-{building}"), actor="t")
    worker = await people.add_worker(db, people.WorkerIn(
        name="王网格", apprise_urls=["json://127.0.0.1:9/w"], grid_id=grid), actor="t")
    made = []
    for n in range(first, first + count):
        made.append(await households.add_household(db, households.HouseholdIn(
            name=f"户{n}", address=f"幸福路 8 号 {n}室", grid_id=grid, worker_id=worker,
            building=building), actor="t"))
        await devices.register_device(db, f"door-{n}", household_id=made[-1], actor="t")
    return worker, made


async def power_cut(feeder: EventFeeder, clock: ManualClock, numbers: range) -> None:
    """Every device's Last Will (status offline) arrives."""
    for n in numbers:
        await feeder.heartbeat(f"door-{n}", clock.now())
        await feeder.status(f"door-{n}", DeviceState.OFFLINE, clock.now())


async def test_a_buildings_power_cut_is_one_incident_and_one_notification(
    db: Database, settings: ServerSettings
) -> None:
    clock = ManualClock(utcnow())
    worker, _ = await block(db, 6)
    feeder = EventFeeder(db, settings)
    watch = DeviceWatch(db, settings, clock)
    await power_cut(feeder, clock, range(1, 7))
    clock.advance(seconds=61)
    result = await watch.tick()
    assert (result.offline, result.groups_opened, result.grouped) == (6, 1, 6)
    group = await rows(db, "SELECT id, kind, state, group_key, detail FROM incidents "
                           "WHERE kind = 'offline_group'")
    assert len(group) == 1
    assert group[0]["group_key"] == "building:3号楼"
    assert "6 devices offline" in group[0]["detail"]
    members = await rows(db, "SELECT group_id, escalate_at, remind_at FROM incidents "
                             "WHERE kind = 'device_offline'")
    assert {m["group_id"] for m in members} == {group[0]["id"]}
    assert all(m["escalate_at"] is None and m["remind_at"] is None for m in members)
    sent = await rows(db, "SELECT incident_id, state, title, body FROM notifications "
                          "WHERE state = 'pending'")
    assert [n["incident_id"] for n in sent] == [group[0]["id"]]  # one notification
    assert "3号楼" in sent[0]["title"]
    assert "6: door-1, door-2" in sent[0]["body"]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications WHERE state = 'grouped'") == 6

    # A seventh device of the building going offline joins; its household is in a grid
    # not told yet (block makes a grid each time), so that grid's worker is told, once.
    seventh, _ = await block(db, 1, first=7)
    await power_cut(feeder, clock, range(7, 8))
    clock.advance(seconds=61)
    result = await watch.tick()
    assert (result.offline, result.groups_opened, result.grouped) == (1, 0, 1)
    assert await rows(db, "SELECT incident_id, worker_id FROM notifications "
                          "WHERE state = 'pending' ORDER BY id") == [
        {"incident_id": group[0]["id"], "worker_id": worker},
        {"incident_id": group[0]["id"], "worker_id": seventh}]
    # An eighth, of a grid already told, joins quietly.
    await households.add_household(db, households.HouseholdIn(
        name="户8", address="幸福路 8 号 8室", grid_id=await scalar(
            db, "SELECT grid_id FROM households WHERE name = '户7'"), worker_id=seventh,
        building="3号楼"), actor="t")
    await devices.register_device(db, "door-8", household_id=await scalar(
        db, "SELECT id FROM households WHERE name = '户8'"), actor="t")
    await power_cut(feeder, clock, range(8, 9))
    clock.advance(seconds=61)
    assert (await watch.tick()).grouped == 1
    assert await scalar(db, "SELECT COUNT(*) FROM notifications WHERE state = 'pending'") == 2
    # Resolving the group resolves its members.
    await resolve_incident(db, int(group[0]["id"]), actor="李主任",
                           outcome=IncidentOutcome.DEVICE_FAULT, note="停电，已恢复")
    assert await scalar(db, "SELECT COUNT(*) FROM incidents WHERE state != 'resolved'") == 0


async def test_a_few_offline_devices_are_notified_one_by_one_after_the_hold(
    db: Database, settings: ServerSettings
) -> None:
    clock = ManualClock(utcnow())
    await block(db, 3)
    feeder = EventFeeder(db, settings)
    await power_cut(feeder, clock, range(1, 4))
    clock.advance(seconds=61)
    result = await DeviceWatch(db, settings, clock).tick()
    assert (result.offline, result.groups_opened) == (3, 0)
    held = await rows(db, "SELECT created_at, next_attempt_at FROM notifications "
                          "WHERE state = 'pending'")
    assert len(held) == 3
    for note in held:  # due hold_s after being queued
        assert note["next_attempt_at"] > note["created_at"]


async def test_a_grid_wide_outage_across_buildings_is_grouped_by_grid(
    db: Database, settings: ServerSettings
) -> None:
    clock = ManualClock(utcnow())
    grid_worker, made = await block(db, 2, building="1号楼")
    grid = await db.fetch_one("SELECT grid_id FROM households WHERE id = ?", (made[0],))
    assert grid is not None
    for n in range(3, 6):  # three more in other buildings (or none) of the same grid
        household = await households.add_household(db, households.HouseholdIn(
            name=f"户{n}", address=f"a{n}", grid_id=grid["grid_id"], worker_id=grid_worker,
            building=None if n == 5 else f"{n}号楼"), actor="t")
        await devices.register_device(db, f"door-{n}", household_id=household, actor="t")
    feeder = EventFeeder(db, settings)
    await power_cut(feeder, clock, range(1, 6))
    clock.advance(seconds=61)
    result = await DeviceWatch(db, settings, clock).tick()
    assert (result.offline, result.groups_opened, result.grouped) == (5, 1, 5)
    key = await rows(db, "SELECT group_key FROM incidents WHERE kind = 'offline_group'")
    assert key[0]["group_key"] == f"grid:{grid['grid_id']}"


async def test_several_instances_open_one_group(
    database_url: str, settings: ServerSettings
) -> None:
    instances = [await open_database(database_url) for _ in range(3)]
    try:
        clock = ManualClock(utcnow())
        await block(instances[0], 5)
        await power_cut(EventFeeder(instances[0], settings), clock, range(1, 6))
        clock.advance(seconds=61)
        await DeviceWatch(instances[0], settings, clock).tick()  # opens the five, and groups
        await asyncio.gather(*(DeviceWatch(db, settings, clock).tick() for db in instances))
        assert await scalar(instances[0], "SELECT COUNT(*) FROM incidents "
                                          "WHERE kind = 'offline_group'") == 1
        assert await scalar(instances[0], "SELECT COUNT(*) FROM notifications "
                                          "WHERE state = 'pending'") == 1
    finally:
        for db in instances:
            await db.close()


async def test_silence_suppresses_device_alerts_and_breaches_only_when_asked(
    db: Database, settings: ServerSettings
) -> None:
    clock = ManualClock(utcnow())
    s = await seed(db)
    feeder = EventFeeder(db, settings)
    silence = await silence_household(db, SilenceIn(
        household_id=s.household, reason="住院", until=utcnow() + timedelta(days=3)),
        actor="李主任")
    await feeder.heartbeat("door-1", clock.now())
    await feeder.status("door-1", DeviceState.OFFLINE, clock.now())
    clock.advance(seconds=61)
    assert (await DeviceWatch(db, settings, clock).tick()).offline == 1  # still recorded
    await feeder.send("door-1", EventKind.TAMPER, utcnow())
    offline = await rows(db, "SELECT kind, silence_id, escalate_at FROM incidents ORDER BY id")
    assert [(o["kind"], o["silence_id"], o["escalate_at"]) for o in offline] == [
        ("device_offline", silence, None), ("tamper", silence, None)]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 0
    # A breach still notifies: the silence did not say otherwise.
    await feeder.send("door-1", EventKind.EXIT, utcnow() + timedelta(hours=1))
    assert [r["purpose"] for r in await rows(db, "SELECT purpose FROM notifications")] == [
        "alert"]
    audit = await rows(db, "SELECT actor, action, detail FROM audit_log "
                           "WHERE action LIKE '%silence%' ORDER BY id")
    assert [(a["actor"], a["action"]) for a in audit] == [
        ("李主任", "household.silence"), ("system", "incident.silenced"),
        ("system", "incident.silenced")]
    assert "住院" in audit[0]["detail"]

    await lift_silence(db, silence, actor="李主任")
    with pytest.raises(InvalidChangeError, match="silence_over"):
        await lift_silence(db, silence, actor="李主任")
    assert [x.active for x in await list_silences(db, household_id=s.household)] == [False]


async def test_a_silence_for_a_household_away_covers_breaches_and_expires(
    db: Database, settings: ServerSettings
) -> None:
    s = await seed(db)
    feeder = EventFeeder(db, settings)
    start = utcnow()
    await silence_household(db, SilenceIn(
        household_id=s.household, reason="全家住院", until=start + timedelta(hours=2),
        include_breaches=True), actor="office", now=start)
    await feeder.send("door-1", EventKind.EXIT, start + timedelta(minutes=1))
    assert await scalar(db, "SELECT COUNT(*) FROM incidents WHERE silence_id IS NOT NULL") == 1
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 0
    with pytest.raises(InvalidChangeError, match="silence_in_past"):
        await silence_household(db, SilenceIn(household_id=s.household, reason="x",
                                              until=start - timedelta(hours=1)), actor="o")


def test_silence_cli(database_url: str) -> None:
    from tests.server.test_cli import Cli

    cli = Cli(database_url)
    cli("worker", "add", "王", "--url", "json://127.0.0.1:9/w")
    cli("household", "add", "张家", "幸福路 1 号", "--worker", "1", "--building", "1号楼")
    assert "silence 1" in cli("silence", "add", "1", "--reason", "住院",
                              "--until", "2099-01-01 08:00", "--breaches")
    listed = cli("silence", "list", "--active")
    assert "住院" in listed
    assert "True" in listed
    cli("silence", "lift", "1")
    assert "住院" not in cli("silence", "list", "--active")
    assert "already over" in cli("silence", "lift", "1", ok=False) or "silence_over" in cli(
        "silence", "lift", "1", ok=False)
    assert cli.rows("SELECT building FROM households") == [{"building": "1号楼"}]


async def test_a_grouped_incident_is_found_from_every_member_household_and_grid(
    db: Database, settings: ServerSettings
) -> None:
    """The dashboard's queries (SQLite and PostgreSQL): a building's grouped incident, filed
    under its first member's household, is found by any member household or grid, and a
    worker of a member household in another grid sees it with their household only."""
    clock = ManualClock(utcnow())
    _, first = await block(db, 2, first=1)
    other_worker, other = await block(db, 2, first=3)  # same building, another grid
    feeder = EventFeeder(db, settings)
    await power_cut(feeder, clock, range(1, 5))
    clock.advance(seconds=61)
    assert (await DeviceWatch(db, settings, clock).tick()).groups_opened == 1
    group = await scalar(db, "SELECT id FROM incidents WHERE kind = 'offline_group'")
    other_grid = await scalar(db, "SELECT grid_id FROM households WHERE id = ?", (other[0],))
    boss = User(id=1, username="李主任", role=Role.SUPERVISOR, language="zh_CN", worker_id=None)
    worker = User(id=2, username="王", role=Role.WORKER, language="zh_CN",
                  worker_id=other_worker)
    for flt in (IncidentFilter(household=other[1]), IncidentFilter(grid=other_grid),
                IncidentFilter(household=first[0])):
        assert group in [r["id"] for r in await incident_rows(db, boss, flt, "UTC")], flt
    [seen] = [r for r in await incident_rows(db, worker, IncidentFilter(), "UTC")
              if r["kind"] == "offline_group"]
    assert (seen["id"], seen["group_place"], seen["group_count"]) == (group, "3号楼", 4)
    assert seen["group_households"] == other
    detail = await incident_detail(db, worker, group)
    assert detail is not None
    assert detail["incident"]["group_households"] == other
    # The other grid's households' own outages stay theirs.
    assert [r["kind"] for r in await incident_rows(
        db, worker, IncidentFilter(household=first[0]), "UTC")] == ["offline_group"]


async def test_a_power_cut_across_grids_tells_every_member_grids_duty_chain_once(
    db: Database, settings: ServerSettings
) -> None:
    """A building shared by two grids loses power: the one grouped incident goes to each
    grid's first responder by its roster (grid 1: its worker, no roster; grid 2: the
    on-duty worker, not the off-shift assigned one), then each grid's backup and
    supervisor; the first acknowledgement ends the reminders for everyone."""
    clock = ManualClock(utcnow())
    supervisors = [await people.add_worker(db, people.WorkerIn(
        name=f"主任{n}", role=people.Role.SUPERVISOR, apprise_urls=[f"json://127.0.0.1:9/s{n}"]),
        actor="t") for n in (1, 2)]
    grids = [await people.add_grid(db, people.GridIn(name=f"网格{n}", supervisor_id=s),
                                   actor="t") for n, s in zip((1, 2), supervisors, strict=True)]

    async def worker(name: str, grid: int) -> int:
        return await people.add_worker(db, people.WorkerIn(
            name=name, apprise_urls=[f"json://127.0.0.1:9/{name}"], grid_id=grid), actor="t")

    first, assigned = await worker("w1", grids[0]), await worker("w2", grids[1])
    duty, backup = await worker("duty2", grids[1]), await worker("backup2", grids[1])
    await add_shift(db, ShiftIn(grid_id=grids[1], worker_id=duty, backup_id=backup,
                                starts="00:00", ends="00:00"), actor="t")
    for n in range(1, 5):
        grid, own = (grids[0], first) if n <= 2 else (grids[1], assigned)
        home = await households.add_household(db, households.HouseholdIn(
            name=f"户{n}", address=f"幸福路 8 号 {n}室", grid_id=grid, worker_id=own,
            building="3号楼"), actor="t")
        await devices.register_device(db, f"door-{n}", household_id=home, actor="t")
    feeder = EventFeeder(db, settings)
    await power_cut(feeder, clock, range(1, 5))
    clock.advance(seconds=61)
    assert (await DeviceWatch(db, settings, clock).tick()).groups_opened == 1
    [group] = await rows(db, "SELECT id FROM incidents WHERE kind = 'offline_group'")
    group_id = int(group["id"])

    async def told(purpose: str) -> list[int]:
        return [int(r["worker_id"]) for r in await rows(
            db, "SELECT worker_id FROM notifications WHERE incident_id = ? AND purpose = ? "
                "ORDER BY id", (group_id, purpose))]

    assert await told("alert") == [first, duty]
    escalator = Escalator(db, settings, clock)
    clock.advance(seconds=421)  # the backups (grid 1 has none), and a reminder to both
    await escalator.tick()
    assert await told("backup") == [backup]
    assert sorted(await told("reminder")) == sorted([first, duty])
    clock.advance(seconds=180)  # the supervisors of both grids
    await escalator.tick()
    assert sorted(await told("escalation")) == sorted(supervisors)
    await acknowledge_incident(db, group_id, actor="duty2", clock=clock, worker_id=duty)
    reminders = len(await told("reminder"))
    clock.advance(hours=1)
    await escalator.tick()
    assert len(await told("reminder")) == reminders  # acknowledged once, for everyone
    assert sorted(await told("acknowledged")) == sorted([first, backup, *supervisors])
    assert assigned not in await told("alert") + await told("reminder")

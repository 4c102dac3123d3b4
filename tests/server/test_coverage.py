"""Monitoring coverage (issue 19 item 4): heartbeats, tamper events and statuses through the
real ingest path, the device watch's ticks on a manual clock, spells read back as shares.

Runs on SQLite and PostgreSQL (conftest's ``database_url``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from broker.messages import (
    DeviceState,
    Event,
    EventKind,
    Heartbeat,
    Status,
    TamperKind,
    encode,
)
from broker.topics import Channel, device_topic
from ground.timeutil import to_ts
from server.clock import ManualClock
from server.config import ServerSettings
from server.db.base import Database
from server.domain import households
from server.domain.coverage import day_window, grid_coverage, household_coverage
from server.domain.incidents import IncidentOutcome, resolve_incident
from server.ingest.ingestor import Ingestor
from server.jobs.device_watch import DeviceWatch
from server.mqtt.inbound import InboundMessage
from tests.server.helpers import rows, seed, settings_for

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Device:
    """Publishes like the agent would, stamped with the manual clock's receipt time."""

    def __init__(self, ingestor: Ingestor, device_id: str, clock: ManualClock):
        self.ingestor, self.device_id, self.clock = ingestor, device_id, clock
        self.seq = 0

    async def heartbeat(self, fps: float | None = 12.0, alarms: list[str] | None = None) -> None:
        beat = Heartbeat(device_id=self.device_id, time=self.clock.now(), uptime_s=5, armed=True,
                         last_seq=self.seq, outbox_depth=0, camera_fps=fps,
                         firmware_version="test", alarms=alarms or [])
        await self._send(Channel.HEARTBEAT, encode(beat))

    async def tamper(self, kind: TamperKind) -> None:
        self.seq += 1
        event = Event(device_id=self.device_id, seq=self.seq, time=self.clock.now(),
                      kind=EventKind.TAMPER, armed=True, tamper=kind, detail="test")
        await self._send(Channel.EVENT, encode(event))

    async def status(self, state: DeviceState) -> None:
        await self._send(Channel.STATUS, encode(Status(device_id=self.device_id, state=state,
                                                       time=self.clock.now())))

    async def _send(self, channel: Channel, payload: bytes) -> None:
        result = await self.ingestor.process([InboundMessage(
            topic=device_topic(self.device_id, channel), payload=payload,
            received_at=to_ts(self.clock.now()))])
        assert result.rejected == 0


async def _tick_at(watch: DeviceWatch, clock: ManualClock, minutes: float) -> None:
    clock.set(T0 + timedelta(minutes=minutes))
    await watch.tick()


async def test_blind_spells_and_share_of_armed_time(db: Database, database_url: str) -> None:
    settings: ServerSettings = settings_for(database_url)
    clock = ManualClock(T0)
    s = await seed(db)
    door = Device(Ingestor(db, settings), "door-1", clock)
    watch = DeviceWatch(db, settings, clock)

    await door.heartbeat()
    await _tick_at(watch, clock, 0)  # armed, everything verified
    clock.set(T0 + timedelta(minutes=10))
    await door.heartbeat()
    await door.tamper(TamperKind.CAMERA_COVERED)  # camera blind from here ...
    await _tick_at(watch, clock, 11)
    clock.set(T0 + timedelta(minutes=20))
    await door.heartbeat()
    await _tick_at(watch, clock, 20)
    incident = (await rows(db, "SELECT id FROM incidents WHERE kind = 'tamper'"))[0]["id"]
    clock.set(T0 + timedelta(minutes=30))
    await door.heartbeat()
    await resolve_incident(db, int(incident), actor="wang", outcome=IncidentOutcome.FALSE_ALARM,
                           note="uncovered", clock=clock)
    await _tick_at(watch, clock, 30)  # ... until a person resolved the tamper incident
    # No heartbeat after minute 30: the link is blind from its last sign of life.
    await _tick_at(watch, clock, 34)  # within the heartbeat budget (180 s): not yet
    await _tick_at(watch, clock, 36)
    clock.set(T0 + timedelta(minutes=40))
    await door.heartbeat()
    await _tick_at(watch, clock, 40)
    # The door sensor is cut at 45; the camera reports no frames at 50 (heartbeat fps 0).
    clock.set(T0 + timedelta(minutes=45))
    await door.tamper(TamperKind.DOOR_SENSOR_DISCONNECTED)
    await door.heartbeat()
    await _tick_at(watch, clock, 45)
    clock.set(T0 + timedelta(minutes=50))
    await door.heartbeat(fps=0.0)
    await _tick_at(watch, clock, 50)
    clock.set(T0 + timedelta(minutes=55))
    await door.heartbeat()
    await _tick_at(watch, clock, 55)
    await _tick_at(watch, clock, 55)  # a second instance's tick changes nothing
    assert await watch.tick() is not None

    now = T0 + timedelta(minutes=60)
    found = (await household_coverage(db, [s.household], T0, T0 + timedelta(hours=2), now))
    cov = found[s.household]
    assert cov.armed_s == 3600
    spells = [(sp.part, round((sp.start - T0).total_seconds() / 60, 1),
               round(sp.seconds / 60, 1), sp.ongoing, sp.reason) for sp in cov.spells]
    assert spells == [
        ("camera", 10.0, 20.0, False, "camera_covered"),
        ("link", 30.0, 10.0, False, "no heartbeat"),
        ("door_sensor", 45.0, 15.0, True, "door_sensor_disconnected"),
        ("camera", 50.0, 5.0, False, "heartbeat reports no camera frames"),
    ]
    # 20 + 10 + 15 blind minutes (the camera's 5 overlap the door sensor's 15).
    assert cov.blind_s == 45 * 60
    assert cov.share is not None
    assert abs(cov.share - 0.25) < 1e-9

    # A window that starts inside the armed time counts only from there.
    later = (await household_coverage(db, [s.household], T0 + timedelta(minutes=30),
                                      T0 + timedelta(minutes=40), now))[s.household]
    assert (later.armed_s, later.blind_s) == (600, 600)


async def test_unarmed_and_deviceless_households_and_a_grid(
    db: Database, database_url: str
) -> None:
    settings = settings_for(database_url)
    clock = ManualClock(T0)
    s = await seed(db)
    bare = await households.add_household(db, households.HouseholdIn(
        name="无设备家", address="幸福路 9 号", grid_id=s.grid, worker_id=s.worker, armed=True),
        actor="test")
    resting = await households.add_household(db, households.HouseholdIn(
        name="未布防家", address="幸福路 10 号", grid_id=s.grid, worker_id=s.worker, armed=False),
        actor="test")
    door = Device(Ingestor(db, settings), "door-1", clock)
    watch = DeviceWatch(db, settings, clock)
    await door.heartbeat()
    await _tick_at(watch, clock, 0)
    clock.set(T0 + timedelta(minutes=30))
    await door.heartbeat()
    await door.status(DeviceState.OFFLINE)  # the Last Will: blind once the grace is over
    await _tick_at(watch, clock, 30)
    await _tick_at(watch, clock, 32)
    await _tick_at(watch, clock, 60)
    now = T0 + timedelta(minutes=60)
    grid = await grid_coverage(db, [s.household, bare, resting], T0, now, now)
    by_id = {c.household_id: c for c in grid.households}
    assert by_id[resting].share is None
    assert by_id[resting].armed_s == 0
    assert by_id[bare].share == 0.0
    assert [sp.part for sp in by_id[bare].spells] == ["device"]
    link = by_id[s.household].spells
    assert [(sp.part, sp.reason, sp.start, sp.ongoing) for sp in link] == [
        ("link", "Last Will: offline", T0 + timedelta(minutes=30), True)]
    assert by_id[s.household].share == 0.5
    assert grid.share is not None
    assert abs(grid.share - 0.25) < 1e-9
    # Disarming ends the armed spell: nothing more is counted.
    async with db.transaction() as tx:
        await tx.execute("UPDATE households SET armed = 0 WHERE id = ?", (s.household,))
    await _tick_at(watch, clock, 70)
    cov = (await household_coverage(db, [s.household], T0, T0 + timedelta(hours=3),
                                    T0 + timedelta(hours=2)))[s.household]
    assert (cov.armed_s, cov.blind_s) == (70 * 60, 40 * 60)


def test_day_window_is_the_local_day() -> None:
    start, end = day_window(date(2026, 3, 1), "Asia/Shanghai")
    assert start.astimezone(UTC) == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert (end - start) == timedelta(days=1)

"""The running server: alert, reminders and escalation through Apprise, across a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from broker.messages import EventKind
from ground.timeutil import from_ts, utcnow
from server.clock import ManualClock
from server.domain.incidents import acknowledge_incident
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import server_settings
from tests.server.helpers import EventFeeder, seed
from tests.waiting import wait_until

pytestmark = pytest.mark.broker


def titles(receiver: Receiver) -> list[str]:
    """Titles of everything delivered so far about the incident (the daily follow-up
    list, which the moved clock may also trigger, is not about it)."""
    return [str(note["title"]) for note in receiver.received
            if not str(note["title"]).startswith("【随访提醒】")]


def about_the_incident(receiver: Receiver, count: int) -> bool:
    """Wait until ``count`` notifications about the incident arrived."""
    return bool(wait_until(lambda: len(titles(receiver)) >= count,
                           f"{count} notification(s) about the incident", 20,
                           detail=lambda: f"titles so far: {titles(receiver)}"))


async def test_reminders_and_escalation_are_delivered_and_survive_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver, database_url: str
) -> None:
    settings = server_settings(
        tmp_path, mosquitto, database_url=database_url,
        escalation={"escalate_after_s": 600, "remind_every_s": 300, "poll_interval_s": 0.05},
        # The seeded device sends no heartbeats; this test is not about it going offline.
        devices={"heartbeat_budget_s": 10 * 365 * 86400})
    clock = ManualClock(utcnow())
    async with serve(settings, clock=clock) as server:
        seeded = await seed(server.db, url=receiver.apprise_url,
                            supervisor_url=receiver.apprise_url + "?supervisor=1")
        feeder = EventFeeder(server.db, settings)
        incident = (await feeder.send("door-1", EventKind.EXIT, utcnow())).incidents_opened[0]
        # Deadlines count from when ingest ran (seconds after the clock was made on a
        # loaded machine): move the clock there first.
        row = await server.db.fetch_one("SELECT remind_at FROM incidents WHERE id = ?",
                                        (incident,))
        assert row is not None
        base = from_ts(row["remind_at"]) - timedelta(seconds=300)
        if base > clock.now():
            clock.advance(seconds=(base - clock.now()).total_seconds())
        assert await asyncio.to_thread(about_the_incident, receiver, 1)
        assert "违规外出" in titles(receiver)[0]
        clock.advance(seconds=301)
        assert await asyncio.to_thread(about_the_incident, receiver, 2)
        assert "提醒 第1次" in titles(receiver)[1]
    # The server is down while the escalation deadline passes ...
    clock.advance(seconds=300)
    async with serve(settings, clock=clock) as server:
        # ... and the restarted server sends it (and the second reminder) from the database.
        assert await asyncio.to_thread(about_the_incident, receiver, 4)
        assert any(t.startswith("[Escalated] Breach") for t in titles(receiver)[2:4])
        assert any("提醒 第2次" in t for t in titles(receiver)[2:4])
        await acknowledge_incident(server.db, incident, actor="王网格", clock=clock,
                                   worker_id=seeded.worker)
        # The supervisor, who was told, is told it is acknowledged (the worker did it).
        assert await asyncio.to_thread(about_the_incident, receiver, 5)
        clock.advance(hours=3)
        # A window, not a wait: nothing more may be sent over several escalation ticks.
        await asyncio.sleep(0.5)
    assert len(titles(receiver)) == 5
    assert titles(receiver)[4].startswith("[Acknowledged] Breach")

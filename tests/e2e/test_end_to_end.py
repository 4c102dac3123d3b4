"""Door -> agent -> Mosquitto -> server -> SQLite -> incident -> Apprise notification."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.classify import ScriptedClassifier
from agent.service import Agent, running_agent
from agent.simulation import HouseholdScript, SimulatedHousehold
from broker.messages import EventKind
from firmware_config.device_config import load_device_config
from sensors.door import make_pin_factory
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count, seed_household, server_settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def make_agent(
    tmp_path: Path, broker: Mosquitto, device_id: str, password: str
) -> tuple[Agent, ScriptedClassifier]:
    """A real agent on a mock door pin, talking to ``broker``."""
    config = load_device_config(
        None, device_id=device_id, data_dir=str(tmp_path / device_id), pin_factory="mock",
        heartbeat_interval_s=0.5, door={"quiet_s": 0.3, "bounce_s": 0},
        mqtt=broker.device_mqtt(password),
    )
    classifier = ScriptedClassifier()
    return Agent(config, pin_factory=make_pin_factory("mock"), classifier=classifier), classifier


async def test_door_exit_becomes_one_event_one_incident_one_notification(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    password = mosquitto.add_device("door-101")
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        db = server.db
        await seed_household(db, "door-101", receiver.apprise_url)
        agent, classifier = make_agent(tmp_path, mosquitto, "door-101", password)
        household = SimulatedHousehold(agent.door.pin, classifier,
                                       HouseholdScript(open_s=(0.2, 0.3)))
        agent.door.pin.drive_low()  # the door is closed when the agent starts
        async with running_agent(agent):
            await household.open_once(EventKind.EXIT)
            assert await asyncio.to_thread(receiver.wait_for, 1)
            await wait_until_async(
                lambda: _eq(count(db, "SELECT COUNT(*) FROM notifications "
                                      "WHERE state = 'delivered'"), 1),
                "the notification marked delivered")
        events = await db.fetch_all("SELECT device_id, seq, kind FROM events")
        incidents = await db.fetch_all("SELECT kind, state, device_id FROM incidents")
        delivered = await db.fetch_all("SELECT state, attempts FROM notifications")
    assert events == [{"device_id": "door-101", "seq": 1, "kind": "exit"}]
    assert incidents == [{"kind": "breach", "state": "open", "device_id": "door-101"}]
    assert delivered == [{"state": "delivered", "attempts": 1}]
    assert len(receiver.received) == 1
    note = receiver.received[0]
    assert "张三家" in str(note["title"])
    assert "违规外出" in str(note["title"])
    assert "幸福路 8 号 3-502" in str(note["message"])
    assert "/incidents/1" in str(note["message"])


async def test_handover_and_disarmed_exit_notify_nobody(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    password = mosquitto.add_device("door-102")
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        db = server.db
        await seed_household(db, "door-102", receiver.apprise_url, armed=False)
        agent, classifier = make_agent(tmp_path, mosquitto, "door-102", password)
        household = SimulatedHousehold(agent.door.pin, classifier,
                                       HouseholdScript(open_s=(0.2, 0.3)))
        agent.door.pin.drive_low()  # the door is closed when the agent starts
        async with running_agent(agent):
            await household.open_once(EventKind.HANDOVER)
            # The next opening must not fall into the first episode's quiet time.
            await wait_until_async(lambda: _eq(count(db, "SELECT COUNT(*) FROM events"), 1),
                                   "the handover stored")
            await household.open_once(EventKind.EXIT)
            await wait_until_async(lambda: _eq(count(db, "SELECT COUNT(*) FROM events"), 2),
                                   "the disarmed exit stored")
        assert await count(db, "SELECT COUNT(*) FROM incidents") == 0
        assert await count(db, "SELECT COUNT(*) FROM notifications") == 0
    assert receiver.received == []


async def _eq(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]

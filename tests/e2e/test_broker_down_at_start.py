"""A broker that is down when agent and server start: nothing is lost, both say so and retry."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.service import running_agent
from agent.simulation import HouseholdScript, SimulatedHousehold
from broker.messages import EventKind
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count, seed_household, server_settings
from tests.e2e.test_end_to_end import _eq, make_agent
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


async def test_events_made_while_the_broker_is_down_arrive_once_it_is_up(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    password = mosquitto.add_device("door-401")
    mosquitto.stop()
    caplog.set_level(logging.WARNING)
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        db = server.db
        await seed_household(db, "door-401", receiver.apprise_url)
        agent, classifier = make_agent(tmp_path, mosquitto, "door-401", password)
        household = SimulatedHousehold(agent.door.pin, classifier,
                                       HouseholdScript(open_s=(0.2, 0.3)))
        agent.door.pin.drive_low()
        async with running_agent(agent):
            await household.open_once(EventKind.EXIT)
            await wait_until_async(lambda: _depth(agent), "the exit in the agent's outbox", 10)

            def unreachable_said() -> set[str]:
                return {"agent" if getattr(r, "device_id", None) == "door-401" else r.name
                        for r in caplog.records if "cannot reach the broker" in r.getMessage()}

            # Both sides said plainly that the broker cannot be reached (the agent used
            # to say nothing: the server's line alone passed this test).
            await wait_until_async(lambda: {"agent", "server.mqtt.link"} <= unreachable_said(),
                                   "'cannot reach the broker' logged by agent and server",
                                   detail=lambda: str([r.getMessage() for r in caplog.records]))
            assert await count(db, "SELECT COUNT(*) FROM events") == 0
            mosquitto.start()
            await wait_until_async(lambda: _eq(count(db, "SELECT COUNT(*) FROM events"), 1),
                                   "the exit stored once the broker is up", 60)
            assert await asyncio.to_thread(receiver.wait_for, 1, 30)
            await wait_until_async(lambda: _empty(agent), "the agent's outbox emptied", 10)
    rows = await _rows(tmp_path)
    assert rows == [("door-401", 1, "exit")]


async def _depth(agent: object) -> bool:
    return bool(await agent.outbox.depth("door-401"))  # type: ignore[attr-defined]


async def _empty(agent: object) -> bool:
    return not await agent.outbox.depth("door-401")  # type: ignore[attr-defined]


async def _rows(tmp_path: Path) -> list[tuple[str, int, str]]:
    import sqlite3

    with sqlite3.connect(tmp_path / "server.db") as conn:
        return [tuple(r) for r in conn.execute("SELECT device_id, seq, kind FROM events")]  # type: ignore[misc]

"""The quarantine schedule over a real Mosquitto: retained arm/disarm reach a real agent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path

import pytest

from agent.service import running_agent
from ground.timeutil import utcnow
from server.domain.households import end_quarantine_early
from server.service import serve
from tests.agent.helpers import device_config, make_agent
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings
from tests.server.helpers import scalar, seed
from tests.waiting import poll_until_async

pytestmark = pytest.mark.broker


async def test_retained_arm_reaches_a_device_that_connects_later_then_early_end_disarms(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password = mosquitto.add_device("door-1")
    settings = server_settings(tmp_path, mosquitto, database_url=database_url,
                               schedule={"poll_interval_s": 0.1})
    async with serve(settings) as server:
        db = server.db
        s = await seed(db, start=utcnow() - timedelta(hours=1),
                       end=utcnow() + timedelta(days=13))

        async def published() -> bool:
            return await scalar(db, "SELECT COUNT(*) FROM devices WHERE device_id = 'door-1' "
                                    "AND arm_published_at IS NOT NULL") == 1

        assert await poll_until_async(published)
        # The device was off while the command went out: the retained copy reaches it.
        agent = make_agent(device_config(tmp_path, mosquitto, "door-1", password,
                                         armed_default=False))
        assert not agent.state.armed
        async with running_agent(agent):
            assert await poll_until_async(lambda: _true(agent.state.armed))

            async def acked(command: str) -> bool:
                return await scalar(db, "SELECT COUNT(*) FROM events WHERE type = 'command_ack' "
                                        "AND payload LIKE ?", (f'%"command":"{command}"%',)) >= 1

            assert await poll_until_async(lambda: acked("arm"))
            await end_quarantine_early(db, s.household, actor="supervisor", reason="test")
            assert await poll_until_async(lambda: _true(not agent.state.armed))
            assert await poll_until_async(lambda: acked("disarm"))


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value


async def test_device_going_offline_while_armed_is_an_incident_until_it_returns(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    password = mosquitto.add_device("door-1")
    settings = server_settings(tmp_path, mosquitto, database_url=database_url,
                               devices={"offline_grace_s": 0.3, "poll_interval_s": 0.05})
    async with serve(settings) as server:
        db = server.db
        await seed(db)
        config = device_config(tmp_path, mosquitto, "door-1", password)

        async def status(state: str) -> bool:
            return await scalar(db, "SELECT COUNT(*) FROM devices WHERE status = ?",
                                (state,)) == 1

        async with running_agent(make_agent(config)):
            assert await poll_until_async(lambda: status("online"))
        # The agent is gone: its status says offline; after the grace, an incident.
        assert await poll_until_async(lambda: status("offline"))

        async def offline_incidents() -> int:
            return await scalar(db, "SELECT COUNT(*) FROM incidents WHERE kind = "
                                    "'device_offline'")

        assert await poll_until_async(lambda: _eq(offline_incidents(), 1))
        async with running_agent(make_agent(config)):
            assert await poll_until_async(lambda: status("online"))

            async def released() -> bool:
                return await scalar(db, "SELECT COUNT(*) FROM devices WHERE "
                                        "offline_incident_id IS NULL") == 1

            assert await poll_until_async(released)
        assert await offline_incidents() == 1


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected

"""The quarantine schedule over a real Mosquitto: retained arm/disarm reach a real agent."""

from __future__ import annotations

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
from tests.waiting import wait_until_async

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

        await wait_until_async(published, "the arm command published to door-1")
        # The device was off while the command went out: the retained copy reaches it.
        agent = make_agent(device_config(tmp_path, mosquitto, "door-1", password,
                                         armed_default=False))
        assert not agent.state.armed
        async with running_agent(agent):
            await wait_until_async(lambda: agent.state.armed,
                                   "the agent armed by the retained command")

            async def acked(command: str) -> bool:
                return await scalar(db, "SELECT COUNT(*) FROM events WHERE type = 'command_ack' "
                                        "AND payload LIKE ?", (f'%"command":"{command}"%',)) >= 1

            await wait_until_async(lambda: acked("arm"), "the agent's ack of arm stored")
            await end_quarantine_early(db, s.household, actor="supervisor", reason="test")
            await wait_until_async(lambda: not agent.state.armed, "the agent disarmed")
            await wait_until_async(lambda: acked("disarm"), "the agent's ack of disarm stored")


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
            await wait_until_async(lambda: status("online"), "door-1 online")
        # The agent is gone: its status says offline; after the grace, an incident.
        await wait_until_async(lambda: status("offline"), "door-1 offline")

        async def offline_incidents() -> int:
            return await scalar(db, "SELECT COUNT(*) FROM incidents WHERE kind = "
                                    "'device_offline'")

        await wait_until_async(lambda: _eq(offline_incidents(), 1), "one device_offline incident")
        async with running_agent(make_agent(config)):
            await wait_until_async(lambda: status("online"), "door-1 online again")

            async def released() -> bool:
                return await scalar(db, "SELECT COUNT(*) FROM devices WHERE "
                                        "offline_incident_id IS NULL") == 1

            await wait_until_async(released, "the offline incident released from door-1")
        assert await offline_incidents() == 1


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected

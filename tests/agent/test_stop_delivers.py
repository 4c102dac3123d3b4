"""A clean stop (an update, a reboot) delivers what waits in the outbox first."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agent.service import running_agent
from broker.messages import Event, EventKind, utc_now
from tests.agent.helpers import ServerSide, device_config, make_agent
from tests.conftest import Mosquitto

pytestmark = pytest.mark.broker


def _waiting(outbox_db: Path) -> int:
    with sqlite3.connect(outbox_db) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox WHERE device_id NOT LIKE '#%'")
                   .fetchone()[0])


async def test_events_recorded_just_before_a_stop_reach_the_broker_before_the_agent_exits(
    tmp_path: Path, mosquitto: Mosquitto,
) -> None:
    password = mosquitto.add_device("door-stop")
    server = ServerSide(mosquitto)
    config = device_config(tmp_path, mosquitto, "door-stop", password)
    agent = make_agent(config)
    try:
        async with running_agent(agent):
            assert await asyncio.to_thread(agent.link.connected.wait, 10)
            for _ in range(30):
                await agent.recorder.record(lambda seq: Event(
                    device_id="door-stop", seq=seq, time=utc_now(), kind=EventKind.HANDOVER,
                    armed=True))
            # The stop comes at once, as SIGTERM would, with the records still queued.
        assert _waiting(config.data_dir / "outbox.db") == 0
        for seq in range(1, 31):
            await asyncio.to_thread(
                server.wait_for, lambda t, p, s=seq: t.endswith("/event")
                and f'"seq":{s},'.encode() in p.replace(b" ", b""), 10, f"event seq {seq}")
    finally:
        server.close()

"""Every command round-trips through a real Mosquitto and is acknowledged."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from agent.service import running_agent
from agent.wiring import build_camera, synthetic_source
from broker.messages import (
    ArmCommand,
    ConfigUpdateCommand,
    DisarmCommand,
    PingCommand,
    Snapshot,
    SnapshotCommand,
    utc_now,
)
from firmware_config.device_config import OVERRIDE_FILE, load_device_config
from tests.agent.helpers import ServerSide, device_config, make_agent
from tests.conftest import Mosquitto

pytestmark = pytest.mark.broker


async def test_every_command_is_acknowledged(tmp_path: Path, mosquitto: Mosquitto) -> None:
    password = mosquitto.add_device("door-cmd")
    server = ServerSide(mosquitto)
    config = device_config(tmp_path, mosquitto, "door-cmd", password,
                           camera={"backend": "synthetic"})
    synthetic = synthetic_source(config)
    agent = make_agent(config, camera=build_camera(config, synthetic))
    try:
        async with running_agent(agent):
            assert await asyncio.to_thread(agent.link.connected.wait, 10)
            now = utc_now()
            disarm = DisarmCommand(device_id="door-cmd", issued_at=now)
            await asyncio.to_thread(server.send, "door-cmd", disarm, retain=True)
            ack = await asyncio.to_thread(server.ack_for, disarm.command_id)
            assert ack.ok
            assert not agent.state.armed

            ping = PingCommand(device_id="door-cmd", issued_at=now)
            await asyncio.to_thread(server.send, "door-cmd", ping)
            assert (await asyncio.to_thread(server.ack_for, ping.command_id)).ok
            assert agent.clock_offset_s is not None

            snap = SnapshotCommand(device_id="door-cmd", issued_at=now)
            await asyncio.to_thread(server.send, "door-cmd", snap)
            ack = await asyncio.to_thread(server.ack_for, snap.command_id)
            assert ack.ok
            _, payload = await asyncio.to_thread(server.wait_for, lambda t, p: t.endswith(
                "/snapshot") and str(ack.event_id).encode() in p)
            jpeg = base64.b64decode(Snapshot.model_validate_json(payload).jpeg_b64)
            assert jpeg[:2] == b"\xff\xd8"
            assert list((config.data_dir / "evidence").glob("*.jpg")) == []  # disarmed

            good = ConfigUpdateCommand(device_id="door-cmd", issued_at=now,
                                       config={"door": {"quiet_s": 2.5},
                                               "heartbeat_interval_s": 5})
            await asyncio.to_thread(server.send, "door-cmd", good)
            assert (await asyncio.to_thread(server.ack_for, good.command_id)).ok
            assert agent.config.door.quiet_s == 2.5
            stored = json.loads((config.data_dir / OVERRIDE_FILE).read_text())
            assert stored["door"] == {"quiet_s": 2.5}

            bad = ConfigUpdateCommand(device_id="door-cmd", issued_at=now,
                                      config={"door": {"quiet_s": -1}})
            await asyncio.to_thread(server.send, "door-cmd", bad)
            ack = await asyncio.to_thread(server.ack_for, bad.command_id)
            assert not ack.ok
            assert ack.reason is not None
            assert "door.quiet_s" in ack.reason
            forbidden = ConfigUpdateCommand(device_id="door-cmd", issued_at=now,
                                            config={"mqtt": {"port": 1}})
            await asyncio.to_thread(server.send, "door-cmd", forbidden)
            ack = await asyncio.to_thread(server.ack_for, forbidden.command_id)
            assert not ack.ok
            assert "mqtt" in (ack.reason or "")
            assert agent.config.door.quiet_s == 2.5
            assert agent.config.mqtt.port == mosquitto.tls_port

        # A restarted device learns the retained disarm, keeps its state, and does
        # not acknowledge the same command twice.
        count_before = sum(str(disarm.command_id).encode() in p for _, p in server.seen)
        again = make_agent(device_config(tmp_path, mosquitto, "door-cmd", password,
                                         armed_default=True))
        assert not again.state.armed
        # The remote update survived the restart (explicit overrides, as in this test, win).
        reloaded = load_device_config(None, device_id="door-cmd", data_dir=str(config.data_dir))
        assert reloaded.door.quiet_s == 2.5
        async with running_agent(again):
            assert await asyncio.to_thread(again.link.connected.wait, 10)
            arm = ArmCommand(device_id="door-cmd", issued_at=utc_now())
            await asyncio.to_thread(server.send, "door-cmd", arm, retain=True)
            assert (await asyncio.to_thread(server.ack_for, arm.command_id)).ok
            assert again.state.armed
        count_after = sum(str(disarm.command_id).encode() in p and b"command_ack" in p
                          for _, p in server.seen)
        assert count_after == count_before
    finally:
        server.close()

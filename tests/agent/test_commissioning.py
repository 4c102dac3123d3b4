"""``doorwatch agent commission`` as the installer runs it, against a real Mosquitto over TLS.

The command runs as a real process in simulation (synthetic camera, mock door
driven automatically). The server's half is the real server (``serve``): it
answers a stored ``commissioning`` event with a ping, and the device's ack
of that ping lands in the server's database.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import Event, EventKind, PingCommand, encode, utc_now
from broker.topics import Channel, command_subscription, device_topic
from ground.ports import free_port
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count, seed_household, server_settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker

_CHECKS = ("Camera frame rate", "Camera aim", "Door sensor", "Broker connection",
           "Test event reaches the server", "Clock synchronised")


def _write_config(tmp_path: Path, mosquitto: Mosquitto, device_id: str, *,
                  port: int | None = None, server_timeout_s: float = 20.0) -> Path:
    """The device's TOML file as an installer would have it (TLS with the broker's CA)."""
    path = tmp_path / f"{device_id}.toml"
    path.write_text(f"""
device_id = "{device_id}"
data_dir = "{tmp_path / device_id}"
language = "en"
pin_factory = "mock"

[mqtt]
host = "127.0.0.1"
port = {port or mosquitto.tls_port}
tls = true
ca_file = "{mosquitto.broker.ca_cert_file}"

[door]
bounce_s = 0

[camera]
backend = "synthetic"
fps = 10

[commission]
door_timeout_s = 3
server_timeout_s = {server_timeout_s}
camera_seconds = 1
""", encoding="utf-8")
    return path


def _commission(config: Path, password: str, aim: Path,
                *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``doorwatch agent commission --simulate`` as a process (the password from the env)."""
    return subprocess.run(
        [sys.executable, "-m", "doorwatch", "agent", "commission", "--config", str(config),
         "--simulate", "--aim", str(aim), *extra],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DOORWATCH_AGENT__MQTT__PASSWORD": password},
    )


def _line(output: str, check: str) -> str:
    """The checklist line of ``check`` (fails the test when it is missing)."""
    found = [line for line in output.splitlines() if f"] {check}" in line]
    assert found, f"no line for {check!r} in:\n{output}"
    return found[0]


def _fix_after(output: str, check: str) -> str:
    """The 'What to do' line printed under ``check``'s FAIL line."""
    lines = output.splitlines()
    index = lines.index(_line(output, check))
    assert index + 1 < len(lines), output
    assert "What to do:" in lines[index + 1], output
    return lines[index + 1]


async def test_commission_passes_with_a_real_server(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    device = "door-commission-ok"
    password = mosquitto.add_device(device)
    config = _write_config(tmp_path, mosquitto, device)
    aim = tmp_path / "aim.png"
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        await seed_household(server.db, device, receiver.apprise_url)
        assert await asyncio.to_thread(server.mqtt.connected.wait, 10)
        done = await asyncio.to_thread(_commission, config, password, aim)
        assert done.returncode == 0, done.stdout + done.stderr
        for check in _CHECKS:
            assert _line(done.stdout, check).startswith("[PASS]"), done.stdout
        assert "All 6 checks passed" in done.stdout
        assert aim.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # The server holds the test event and the device's ack of the server's ping.
        assert await count(server.db, "SELECT COUNT(*) FROM events WHERE device_id = ? "
                           "AND kind = 'commissioning'", (device,)) == 1
        await wait_until_async(lambda: _acks(server.db, device), "the device's ack of the ping")


async def _acks(db: Any, device: str) -> bool:
    return await count(db, "SELECT COUNT(*) FROM events WHERE device_id = ? "
                       "AND type = 'command_ack'", (device,)) >= 1


async def test_commission_fails_when_the_door_sensor_is_unplugged(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    device = "door-commission-unplugged"
    password = mosquitto.add_device(device)
    config = _write_config(tmp_path, mosquitto, device, server_timeout_s=1)
    done = await asyncio.to_thread(_commission, config, password, tmp_path / "aim.png",
                                   "--simulate-fault", "door-unplugged")
    assert done.returncode == 1, done.stdout + done.stderr
    door = _line(done.stdout, "Door sensor")
    assert door.startswith("[FAIL]")
    assert "unplugged or its wire is cut" in door
    assert "GPIO17" in _fix_after(done.stdout, "Door sensor")
    # The camera and the broker are fine: the checklist points at the door alone there.
    assert _line(done.stdout, "Camera frame rate").startswith("[PASS]")
    assert _line(done.stdout, "Broker connection").startswith("[PASS]")


async def test_commission_fails_when_the_broker_is_unreachable(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    device = "door-commission-nobroker"
    password = mosquitto.add_device(device)
    wrong = free_port()  # nobody listens here
    config = _write_config(tmp_path, mosquitto, device, port=wrong)
    done = await asyncio.to_thread(_commission, config, password, tmp_path / "aim.png")
    assert done.returncode == 1, done.stdout + done.stderr
    broker = _line(done.stdout, "Broker connection")
    assert broker.startswith("[FAIL]")
    assert f"cannot reach 127.0.0.1:{wrong}" in broker
    assert "mqtt.host and mqtt.port" in _fix_after(done.stdout, "Broker connection")
    server = _line(done.stdout, "Test event reaches the server")
    assert server.startswith("[FAIL]")
    assert "broker is not reachable" in server
    assert _line(done.stdout, "Door sensor").startswith("[PASS]")


async def test_server_pings_each_newly_stored_commissioning_event(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    """Stored once -> one ping after the commit; a redelivered duplicate -> no ping."""
    device = "door-commission-ping"
    password = mosquitto.add_device(device)
    pings: queue.Queue[PingCommand] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device)
    client.username_pw_set(device, password)
    client.tls_set(ca_certs=str(mosquitto.broker.ca_cert_file))
    client.on_connect = lambda c, *_: c.subscribe(command_subscription(device), qos=1)
    client.on_message = lambda _c, _u, m: pings.put(PingCommand.model_validate_json(m.payload))
    client.connect("127.0.0.1", mosquitto.tls_port)
    client.loop_start()

    def send(seq: int, kind: EventKind, again: Event | None = None) -> Event:
        event = again or Event(device_id=device, seq=seq, time=utc_now(), kind=kind,
                               armed=False)
        client.publish(device_topic(device, Channel.EVENT), encode(event),
                       qos=1).wait_for_publish(10)
        return event

    try:
        async with serve(server_settings(tmp_path, mosquitto)) as server:
            await seed_household(server.db, device, receiver.apprise_url)
            assert await asyncio.to_thread(server.mqtt.connected.wait, 10)
            first = await asyncio.to_thread(send, 1, EventKind.COMMISSIONING)
            ping = await asyncio.to_thread(pings.get, timeout=20)
            assert (ping.device_id, ping.command_id) == (device, first.event_id)
            assert await count(server.db, "SELECT COUNT(*) FROM events WHERE device_id = ? "
                               "AND kind = 'commissioning'", (device,)) == 1
            # The same record again (a redelivery), then a door event and a new
            # commissioning event. The server publishes in order, so a ping for the
            # duplicate (or the door event) would arrive before the new one's.
            await asyncio.to_thread(send, 1, EventKind.COMMISSIONING, first)
            await asyncio.to_thread(send, 2, EventKind.DOOR_OPEN_UNVERIFIED)
            third = await asyncio.to_thread(send, 3, EventKind.COMMISSIONING)
            ping = await asyncio.to_thread(pings.get, timeout=20)
            assert ping.command_id == third.event_id
            assert server.consumer.totals.duplicates >= 1
    finally:
        client.disconnect()
        client.loop_stop()

"""Both clients of the broker send without Nagle's algorithm (TCP_NODELAY set).

paho never sets TCP_NODELAY; with Nagle's algorithm the tail of a larger device
message waited for the broker's delayed ACK (~45 ms a message in the field). The
agent's link sets it on paho's socket (threaded, as on a device, and driven by the
event loop, as in the fleet simulator); the server's own link gets it from asyncio,
which sets it on every TCP transport: checked here rather than assumed. The
broker's end is tests/broker/test_tcp_nodelay.py.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agent.link import AgentLink
from agent.outbox import Outbox
from firmware_config.device_config import MqttLinkSettings
from server.config import MqttSettings
from server.mqtt.inbound import InboundBuffer
from server.mqtt.link import MqttLink
from tests.conftest import Mosquitto
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker

DEVICE = "nodelay-dev"


def _nodelay(sock: Any) -> int:
    return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


@pytest.mark.parametrize("threaded", [True, False], ids=["paho-thread", "event-loop"])
async def test_the_agents_connection_to_the_broker_has_tcp_nodelay(
    tmp_path: Path, mosquitto: Mosquitto, threaded: bool
) -> None:
    password = mosquitto.add_device(DEVICE)
    settings = MqttLinkSettings(host="localhost", port=mosquitto.tls_port, tls=True,
                                ca_file=mosquitto.broker.ca_cert_file,
                                password=SecretStr(password))
    outbox = await Outbox.connect(tmp_path / "outbox.db", durable=False)
    link = AgentLink(DEVICE, settings, outbox, threaded=threaded)
    link.start(asyncio.get_running_loop())
    try:
        await wait_until_async(link.connected.is_set, "the agent connected")
        sock = link._client.socket()
        assert sock is not None
        assert sock.family in (socket.AF_INET, socket.AF_INET6)  # TCP under the TLS
        assert _nodelay(sock) == 1
    finally:
        link.stop()
        await outbox.close()


@pytest.mark.parametrize("tls", [False, True], ids=["loopback", "tls"])
async def test_the_servers_connection_to_the_broker_has_tcp_nodelay(
    mosquitto: Mosquitto, tls: bool
) -> None:
    settings = MqttSettings(
        host="127.0.0.1", port=mosquitto.tls_port if tls else mosquitto.port, tls=tls,
        ca_file=mosquitto.broker.ca_cert_file if tls else None,
        password=mosquitto.broker.server_password, client_id="doorwatch-server-nodelay")
    link = MqttLink(settings, InboundBuffer())
    link.start(asyncio.get_running_loop())
    try:
        await wait_until_async(link.connected.is_set, "the server's link connected")
        conn = link._conn
        assert conn is not None
        assert conn.transport is not None
        assert _nodelay(conn.transport.get_extra_info("socket")) == 1
    finally:
        await link.close()

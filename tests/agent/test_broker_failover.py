"""The agent's link moves to the next broker node when its node dies, losing nothing.

Two real Mosquittos stand in for two nodes of a cluster (the device has the same
credentials on both, as on a RabbitMQ cluster). The device publishes from its
outbox through node A; A is SIGKILLed; everything produced afterwards, and
whatever A had not acknowledged, arrives through node B. The cluster itself is
tested in tests/faults/test_rabbitmq_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from agent.link import AgentLink
from agent.outbox import Outbox
from broker.messages import Event, EventKind, encode, utc_now
from broker.mosquitto.directory import SERVER_USER, BrokerDir
from broker.mosquitto.runner import find_mosquitto
from broker.topics import Channel, device_subscription, device_topic
from firmware_config.device_config import MqttLinkSettings
from ground.ports import free_ports
from tests.conftest import Mosquitto
from tests.requirements import need
from tests.waiting import wait_until_async

pytestmark = [pytest.mark.broker]

DEVICE = "failover-dev"


class _Seqs:
    """Event seqs one broker delivered to a subscriber (the server's account)."""

    def __init__(self, broker: Mosquitto):
        self.seqs: list[int] = []
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{broker.port}",
                             protocol=mqtt.MQTTv311)
        client.username_pw_set(SERVER_USER, broker.broker.server_password)
        client.on_message = self._on_message
        client.connect("127.0.0.1", broker.port)
        client.subscribe(device_subscription(), qos=1)
        client.loop_start()
        self.client = client

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/event"):
            with self._lock:
                self.seqs.append(int(json.loads(msg.payload)["seq"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _broker(root: Path) -> Mosquitto:
    broker = BrokerDir(root)
    port, loopback = free_ports(2)
    # The device connects over TLS as in production (it trusts both nodes' CAs, see
    # the test); the watcher uses the server account on the loopback listener.
    broker.init(port=port, host="127.0.0.1", loopback_port=loopback)
    instance = Mosquitto(broker)
    instance.start()
    return instance


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto, str]]:
    """Two brokers where the device has the same password."""
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    a, b = _broker(tmp_path / "a"), _broker(tmp_path / "b")
    password = a.add_device(DEVICE)
    b.broker.set_password(DEVICE, password)
    b.reload()
    yield a, b, password
    for node in (a, b):
        node.stop()


async def _produce(outbox: Outbox, link: AgentLink, count: int) -> None:
    for _ in range(count):
        await outbox.append(DEVICE, device_topic(DEVICE, Channel.EVENT), lambda seq: encode(
            Event(device_id=DEVICE, seq=seq, time=utc_now(), kind=EventKind.DOOR_OPEN,
                  armed=True)))
    link.wake()


async def _drained(outbox: Outbox, limit_s: float) -> bool:
    async def empty() -> bool:
        return not await outbox.depth()

    return bool(await wait_until_async(empty, "the outbox drained", limit_s,
                                       detail=lambda: f"depth {outbox.waiting}"))


@pytest.mark.parametrize("threaded", [True, False], ids=["paho-thread", "event-loop"])
async def test_link_moves_to_the_next_node_without_loss(
    tmp_path: Path, two_nodes: tuple[Mosquitto, Mosquitto, str], threaded: bool
) -> None:
    a, b, password = two_nodes
    seen_a, seen_b = _Seqs(a), _Seqs(b)
    outbox = await Outbox.connect(tmp_path / "outbox.db", durable=False)
    # Over TLS, as devices connect (no device credential works on the loopback
    # listener); the two nodes have CAs of their own, so the device trusts both.
    cas = tmp_path / "nodes-ca.pem"
    cas.write_bytes(a.broker.ca_cert_file.read_bytes() + b.broker.ca_cert_file.read_bytes())
    settings = MqttLinkSettings(host="127.0.0.1", port=a.tls_port, password=SecretStr(password),
                                keepalive_s=5, brokers=[f"127.0.0.1:{b.tls_port}"],
                                tls=True, ca_file=cas)
    link = AgentLink(DEVICE, settings, outbox, threaded=threaded)
    loop = asyncio.get_running_loop()
    link.start(loop)
    pump = loop.create_task(link.run())
    try:
        await _produce(outbox, link, 100)
        assert await _drained(outbox, 20)
        assert link.where == f"127.0.0.1:{a.tls_port}"
        # A PUBACK from A does not mean A has passed the event on yet: let the watcher
        # have everything before A dies (what A loses is a single broker's business).
        await wait_until_async(lambda: len(set(seen_a.seqs)) >= 100,
                               "A's watcher to see seq 1-100", 10)
        a.stop(kill=True)
        # Produced while the device finds out and moves: all of it must reach B.
        await _produce(outbox, link, 100)
        assert await _drained(outbox, 30)
        assert link.where == f"127.0.0.1:{b.tls_port}"
        await wait_until_async(lambda: set(range(101, 201)) <= set(seen_b.seqs),
                               "B's watcher to see seq 101-200")
    finally:
        pump.cancel()
        link.stop()
        await outbox.close()
        for seen in (seen_a, seen_b):
            seen.close()
    assert sorted(set(seen_a.seqs)) == list(range(1, 101))
    assert set(range(101, 201)) <= set(seen_b.seqs)
    assert set(seen_a.seqs) | set(seen_b.seqs) == set(range(1, 201))

"""Real paho clients for broker security tests: connect as someone, collect what arrives."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.service import Agent
from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from tests.conftest import Mosquitto
from tests.waiting import wait_until

__all__ = ["Client", "connect", "outbox_empty", "produce_rotation_events"]


async def produce_rotation_events(agent: Agent, total: int) -> None:
    """``total`` tamper events ``rotation-0``.. from ``agent``'s device, one every 5 ms."""
    device_id = agent.device_id
    topic = device_topic(device_id, Channel.EVENT)
    for i in range(total):
        await agent.outbox.append(device_id, topic, lambda s, i=i: encode(Event(
            device_id=device_id, seq=s, time=utc_now(), kind=EventKind.TAMPER, armed=False,
            detail=f"rotation-{i}")))
        agent.link.wake()
        await asyncio.sleep(0.005)  # not a wait: the device produces over time


async def outbox_empty(agent: Agent) -> bool:
    """Whether everything ``agent`` stored has been acknowledged by the broker."""
    return await agent.outbox.depth() == 0



@dataclass
class Client:
    """A connected (or refused) paho client recording everything that happens to it."""

    paho: mqtt.Client
    connack: str | None = None
    refused: bool = False
    disconnects: list[str] = field(default_factory=list)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    subacks: list[list[int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        """Topics received so far, in order."""
        with self._lock:
            return [t for t, _ in self.messages]

    def subscribe(self, topic: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK codes (128 = refused)."""
        before = len(self.subacks)
        self.paho.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > before, f"the SUBACK for {topic}")
        return self.subacks[before]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish and wait until paho has handed it over (PUBACK for QoS 1)."""
        info = self.paho.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


def connect(
    broker: Mosquitto,
    username: str | None,
    password: str | None,
    *,
    client_id: str | None = None,
    tls: bool = True,
    ca_file: Path | None = None,
    reconnect: bool = False,
) -> Client:
    """Connect to ``broker`` (TLS listener by default) and wait for the CONNACK."""
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or username or "",
                       protocol=mqtt.MQTTv311, clean_session=True)
    client = Client(paho)
    connected = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        client.connack = str(reason)
        client.refused = bool(reason.is_failure)
        connected.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        client.disconnects.append(str(reason))

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with client._lock:
            client.messages.append((msg.topic, bytes(msg.payload)))

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        client.subacks.append([c.value for c in codes])

    paho.on_connect = on_connect
    paho.on_disconnect = on_disconnect
    paho.on_message = on_message
    paho.on_subscribe = on_subscribe
    if username is not None:
        paho.username_pw_set(username, password)
    if tls:
        paho.tls_set(ca_certs=str(ca_file or broker.broker.ca_cert_file))
    port = broker.tls_port if tls else broker.port
    paho.connect("localhost" if tls else "127.0.0.1", port, keepalive=30)
    if not reconnect:
        paho.reconnect_delay_set(3600, 3600)
    paho.loop_start()
    assert connected.wait(10), "no CONNACK"
    return client


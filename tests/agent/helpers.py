"""Test helpers: device configs, agents on a mock pin, a server-user MQTT client."""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.service import Agent
from broker.messages import (
    CommandAck,
    encode,
)
from broker.mosquitto.directory import SERVER_USER
from broker.topics import command_topic, device_subscription
from firmware_config.device_config import DeviceConfig, load_device_config
from sensors.door import make_pin_factory
from tests.conftest import Mosquitto
from tests.waiting import wait_until, wait_until_async

__all__ = ["ServerSide", "analysed_for", "device_config", "make_agent", "outbox_records",
           "records_until"]


def device_config(tmp_path: Path, broker: Mosquitto | None, device_id: str, password: str,
                  **extra: Any) -> DeviceConfig:
    """A device configuration for tests (mock door, fast episodes)."""
    base: dict[str, Any] = {
        "device_id": device_id, "data_dir": str(tmp_path / device_id), "pin_factory": "mock",
        "heartbeat_interval_s": 0.5, "door": {"quiet_s": 0.5, "bounce_s": 0},
        "mqtt": broker.device_mqtt(password) if broker else {"host": "127.0.0.1", "port": 1,
                                                              "password": password},
    }
    for key, value in extra.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return load_device_config(None, **base)


def make_agent(config: DeviceConfig, **kwargs: Any) -> Agent:
    """An agent on a mock pin."""
    return Agent(config, pin_factory=make_pin_factory("mock"), **kwargs)


class ServerSide:
    """Publishes commands as the server user and collects what devices send."""

    def __init__(self, broker: Mosquitto):
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.seen: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-server-side")
        self.client.username_pw_set(SERVER_USER, broker.broker.server_password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(device_subscription(), qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        self.messages.put((msg.topic, payload))

    def send(self, device_id: str, command: Any, *, retain: bool = False) -> None:
        """Publish a command model."""
        self.client.publish(command_topic(device_id, command.name), encode(command), qos=1,
                            retain=retain).wait_for_publish(5)

    def wait_for(self, predicate: Any, timeout: float = 20.0,
                 what: str = "a matching message from the device") -> tuple[str, bytes]:
        """The first message (seen before or arriving) matching ``predicate(topic, payload)``."""

        def found() -> tuple[str, bytes] | None:
            while True:
                try:
                    self.seen.append(self.messages.get_nowait())
                except queue.Empty:
                    break
            return next((item for item in self.seen if predicate(*item)), None)

        result: tuple[str, bytes] = wait_until(
            found, what, timeout, detail=lambda: f"topics seen: {[t for t, _ in self.seen]}")
        return result

    def ack_for(self, command_id: Any, timeout: float = 20.0) -> CommandAck:
        """Wait for the device's ack of ``command_id``."""
        _, payload = self.wait_for(lambda topic, p: topic.endswith("/event")
                                   and str(command_id).encode() in p
                                   and b'"command_ack"' in p, timeout,
                                   f"the device's ack of command {command_id}")
        return CommandAck.model_validate_json(payload)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


async def outbox_records(agent: Agent) -> list[dict[str, Any]]:
    """Every record waiting in the agent's durable outbox, decoded."""
    return [json.loads(r.payload) for r in await agent.outbox.pending(1000)]


async def records_until(agent: Agent, which: Any, count: int, what: str,
                        limit_s: float = 30.0) -> list[dict[str, Any]]:
    """Wait until ``await which(agent)`` (a list of outbox records) has ``count``; return it."""
    outbox: list[dict[str, Any]] = []  # as last read, for the message on a timeout

    async def enough() -> bool:
        outbox[:] = await outbox_records(agent)
        return len(await which(agent)) >= count

    await wait_until_async(enough, f"{count} {what} in the outbox", limit_s,
                           detail=lambda: f"outbox: {outbox}")
    result: list[dict[str, Any]] = await which(agent)
    return result


async def analysed_for(agent: Agent, seconds: float, limit_s: float = 60.0) -> None:
    """Wait until the camera has analysed ``seconds`` of frames since its first one.

    The background model learns the empty corridor from them; a fixed sleep would
    count wall time, which a loaded machine's analysis may lag far behind.
    """
    camera = agent.camera
    assert camera is not None
    timeline = camera.timeline

    def span() -> float:
        monos = timeline.frame_monos
        return timeline.processed - monos[0] if monos else 0.0

    await wait_until_async(lambda: span() >= seconds, f"{seconds} s of frames analysed", limit_s)

"""The admin tools' MQTT client: send a device a command and watch for its answer.

Used by ``doorwatch device rotate``. It connects with the broker's admin
account (never the server's: see ``broker.mosquitto.directory.ADMIN_USER``) through the
loopback listener when the broker has one, otherwise through TLS verified
against the broker's own CA. Clean session: it leaves nothing behind.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from uuid import UUID

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import Command, CommandAck, DeviceState, Status, decode_device_message, encode
from broker.mosquitto.directory import ADMIN_USER, BrokerDir
from broker.rabbitmq.broker_dir import RabbitBrokerDir
from broker.topics import Channel, command_topic, device_topic, parse_topic
from ground.errors import ConfigError, DoorwatchError, PayloadError
from ground.logs import get_logger

__all__ = ["AdminLink", "BrokerUnreachableError"]

log = get_logger(__name__)


class BrokerUnreachableError(DoorwatchError, ConnectionError):
    """The admin tool could not connect to the broker."""

    def __init__(self, where: str, reason: str):
        self.where = where
        super().__init__(f"cannot connect to the broker at {where}: {reason}")


class AdminLink:
    """A short-lived connection for one device's commands (use as a context manager)."""

    def __init__(self, broker: BrokerDir | RabbitBrokerDir, device_id: str):
        state = broker.state()
        if state.admin_password is None:
            raise ConfigError("no admin account (made by an older `broker init`)",
                              path=broker.state_file, field="admin_password")
        self.device_id = device_id
        self._acks: dict[UUID, CommandAck] = {}
        self._changed = threading.Condition()
        self._online_seen = False
        self._connected = threading.Event()
        self._refused: str | None = None
        # The broker replaces the client id by the username on every listener, so
        # this id is only what the logs show; two admin commands at once share a session.
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ADMIN_USER}-{os.getpid()}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.username_pw_set(ADMIN_USER, state.admin_password)
        if state.loopback_port is not None:
            self._host, self._port = "127.0.0.1", state.loopback_port
        else:
            self._host, self._port = broker.host, state.port
            client.tls_set(ca_certs=str(broker.ca_cert_file))
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self._client = client

    @property
    def where(self) -> str:
        """host:port of the broker."""
        return f"{self._host}:{self._port}"

    def __enter__(self) -> AdminLink:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise BrokerUnreachableError(self.where, str(exc)) from None
        self._client.loop_start()
        if not self._connected.wait(10) or self._refused:
            self._client.loop_stop()
            raise BrokerUnreachableError(self.where, self._refused or "no answer")
        # The broker handles a connection's packets in order: these subscriptions are
        # in place before any command we publish next can reach the device.
        for channel in (Channel.EVENT, Channel.STATUS):
            self._client.subscribe(device_topic(self.device_id, channel), qos=1)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, command: Command) -> None:
        """Publish ``command`` to the device (QoS 1, never retained: it may carry a secret)."""
        info = self._client.publish(command_topic(self.device_id, command.name), encode(command),
                                    qos=1, retain=False)
        info.wait_for_publish(timeout=10)

    def wait_ack(self, command_id: UUID, timeout: float) -> CommandAck | None:
        """The device's acknowledgement of ``command_id``, or None after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: command_id in self._acks, timeout)
            return self._acks.get(command_id)

    def expect_reconnect(self) -> None:
        """Forget earlier presence: :meth:`wait_online` then waits for a fresh ``online``."""
        with self._changed:
            self._online_seen = False

    def wait_online(self, timeout: float) -> bool:
        """Wait until the device announces itself online (live, not the retained copy)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._online_seen, timeout)

    # paho callbacks (its network thread)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            info = parse_topic(msg.topic)
            message = decode_device_message(info, msg.topic, bytes(msg.payload))
        except PayloadError as exc:
            log.warning("unreadable device message", extra={"device_id": self.device_id,
                                                            "topic": msg.topic,
                                                            "reason": exc.reason})
            return
        with self._changed:
            if isinstance(message, CommandAck):
                self._acks[message.command_id] = message
            elif (isinstance(message, Status) and message.state is DeviceState.ONLINE
                  and not msg.retain):
                self._online_seen = True
            self._changed.notify_all()

"""The server's only module that knows paho: subscribe, receive, acknowledge, publish.

paho is driven by the event loop (``broker.paho_loop``); received messages go
into an :class:`~server.inbound.InboundBuffer` that the consumer drains in
batches. Acknowledgement is manual: the broker keeps
a message in the server's persistent session until :meth:`ack` is called,
which the consumer does only after the database commit. A server killed
between receipt and commit therefore gets the message again on reconnect.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.paho_loop import PahoLoopDriver
from broker.topics import device_subscription, shared
from doorwatch.logs import get_logger
from server.config import MqttSettings
from server.inbound import InboundBuffer, InboundMessage

__all__ = ["MqttLink"]

log = get_logger(__name__)

# A week: the broker keeps queueing for a server that is down for maintenance.
_SESSION_EXPIRY_S = 7 * 24 * 3600
_RECEIVE_MAXIMUM = 1000


class MqttLink:
    """A persistent-session MQTT client feeding an asyncio queue."""

    def __init__(self, settings: MqttSettings, buffer: InboundBuffer):
        self._settings = settings
        self._buffer = buffer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: PahoLoopDriver | None = None
        self._driver_task: asyncio.Task[None] | None = None
        self.connected = threading.Event()
        protocol = mqtt.MQTTv5 if settings.protocol == 5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {}
        if protocol == mqtt.MQTTv311:
            kwargs["clean_session"] = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=protocol,
            manual_ack=True,
            **kwargs,
        )
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        if settings.tls:
            ca = str(settings.ca_file) if settings.ca_file else None
            self._client.tls_set(ca_certs=ca)
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()

    @property
    def where(self) -> str:
        """host:port of the broker, for messages."""
        return f"{self._settings.host}:{self._settings.port}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self._loop = loop
        self._buffer.bind(loop)
        props = None
        if self._settings.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
            props.SessionExpiryInterval = _SESSION_EXPIRY_S
            props.ReceiveMaximum = _RECEIVE_MAXIMUM
        clean_start = False if self._settings.protocol == 5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        # paho runs on this event loop (no network thread): receiving, storing and
        # acknowledging then never hand the GIL back and forth per message.
        self._driver = PahoLoopDriver(
            self._client, self._settings.host, self._settings.port, self._settings.keepalive_s,
            loop, self._settings.client_id,
            connect_kwargs={"clean_start": clean_start, "properties": props})
        self._driver_task = loop.create_task(self._driver.run(), name="mqtt")

    def stop(self) -> None:
        """Disconnect cleanly (the persistent session stays on the broker)."""
        if self._driver_task is not None:
            self._driver_task.cancel()
        if self._driver is not None:
            self._driver.stop()

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (after its data is committed)."""
        if qos > 0:
            self._client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish (commands to devices); paho queues it while disconnected."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def _topic_filters(self) -> list[str]:
        base = device_subscription()
        group = self._settings.shared_group
        return [shared(group, base) if group else base]

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection",
                      extra={"broker": self.where, "reason": str(reason)})
            return
        for topic_filter in self._topic_filters():
            client.subscribe(topic_filter, qos=1)
        self.connected.set()
        log.info("connected to broker", extra={"broker": self.where,
                                               "client_id": self._settings.client_id})

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("broker refused the subscription",
                      extra={"broker": self.where, "reasons": failed})
            return
        # From here on the broker queues device messages for this server's session,
        # even while the server is down: operators and tests wait for this line.
        self.subscribed.set()
        log.info("subscribed", extra={"broker": self.where, "filters": self._topic_filters()})

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        log.warning("disconnected from broker; reconnecting",
                    extra={"broker": self.where, "reason": str(reason)})

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._buffer.put_nowait(InboundMessage(
            topic=msg.topic, payload=bytes(msg.payload), mid=msg.mid, qos=msg.qos,
            retain=msg.retain))

"""The agent's only module that knows paho: publish the outbox, presence, receive commands.

The outbox is the source of truth. The link hands at most ``window`` records
to paho at a time and deletes a record only when paho reports its PUBACK.
paho retransmits unacknowledged messages after a reconnect; as a safety net,
a record handed over long ago without an acknowledgement is handed over
again (the server ignores duplicates by ``(device_id, seq)``). After an agent
restart, everything still in the outbox is simply published again.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.outbox import Outbox
from broker.messages import Command, DeviceState, Status, decode_command, encode, utc_now
from broker.topics import Channel, command_subscription, device_topic
from doorwatch.errors import PayloadError
from doorwatch.logs import get_logger
from firmware_config.device_config import MqttLinkSettings

__all__ = ["AgentLink"]

log = get_logger(__name__)

CommandHandler = Callable[[Command], None]


class AgentLink:
    """Connects one device to the broker and drains its outbox."""

    def __init__(
        self,
        device_id: str,
        settings: MqttLinkSettings,
        outbox: Outbox,
        *,
        on_command: CommandHandler | None = None,
        window: int = 100,
        resend_after_s: float = 30.0,
    ):
        self.device_id = device_id
        self._settings = settings
        self._outbox = outbox
        self._on_command = on_command
        self._window = window
        self._resend_after_s = resend_after_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._inflight: dict[tuple[str, int], tuple[int, float]] = {}
        self._mid_to_key: dict[int, tuple[str, int]] = {}
        self._acked: collections.deque[int] = collections.deque()
        self.connected = threading.Event()
        self.acked_total = 0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        password = self._settings.password.get_secret_value() if self._settings.password else None
        client.username_pw_set(self.device_id, password)
        if self._settings.tls:
            client.tls_set(ca_certs=str(self._settings.ca_file) if self._settings.ca_file else None)
        offline = Status(device_id=self.device_id, state=DeviceState.OFFLINE, time=utc_now())
        client.will_set(device_topic(self.device_id, Channel.STATUS), encode(offline), 1, True)
        client.max_inflight_messages_set(self._window)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    @property
    def where(self) -> str:
        """host:port of the broker."""
        return f"{self._settings.host}:{self._settings.port}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; paho retries with backoff while the broker is away."""
        self._loop = loop
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Say ``offline`` (a clean stop does not fire the Last Will) and disconnect."""
        if self.connected.is_set():
            offline = Status(device_id=self.device_id, state=DeviceState.OFFLINE, time=utc_now())
            info = self._client.publish(
                device_topic(self.device_id, Channel.STATUS), encode(offline), 1, True
            )
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    def wake(self) -> None:
        """Tell the publish loop that the outbox has something new (thread-safe)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def publish_transient(self, channel: Channel, payload: bytes, *, qos: int = 0) -> None:
        """Publish something not worth keeping across reboots (heartbeats)."""
        if self.connected.is_set():
            self._client.publish(device_topic(self.device_id, channel), payload, qos=qos)

    async def run(self) -> None:
        """Pump the outbox into paho and delete what the broker acknowledged, until cancelled."""
        while True:
            await self._delete_acked()
            if self.connected.is_set():
                await self._hand_over()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _delete_acked(self) -> None:
        # Only this (event-loop) thread touches the mid maps; paho's thread only
        # appends to the deque. Taking a lock in on_publish could deadlock: paho
        # calls it while holding the mutex that publish() also needs.
        keys: list[tuple[str, int]] = []
        while self._acked:
            key = self._mid_to_key.pop(self._acked.popleft(), None)
            if key is not None and self._inflight.pop(key, None) is not None:
                keys.append(key)
        if keys:
            await asyncio.to_thread(self._outbox.delete, keys)
            self.acked_total += len(keys)

    async def _hand_over(self) -> None:
        now = time.monotonic()
        stale = [k for k, (_, at) in self._inflight.items() if now - at > self._resend_after_s]
        for key in stale:
            mid, _ = self._inflight.pop(key)
            self._mid_to_key.pop(mid, None)
        free = self._window - len(self._inflight)
        busy = list(self._inflight)
        if free <= 0:
            return
        records = await asyncio.to_thread(self._outbox.pending, free, busy)
        for record in records:
            info = self._client.publish(record.topic, record.payload, qos=1)
            key = (record.device_id, record.seq)
            self._inflight[key] = (info.mid, now)
            self._mid_to_key[info.mid] = key

    # paho callbacks (its network thread)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection",
                      extra={"device_id": self.device_id, "broker": self.where,
                             "reason": str(reason)})
            return
        online = Status(device_id=self.device_id, state=DeviceState.ONLINE, time=utc_now())
        client.publish(device_topic(self.device_id, Channel.STATUS), encode(online), 1, True)
        client.subscribe(command_subscription(self.device_id), qos=1)
        self.connected.set()
        log.info("connected to broker", extra={"device_id": self.device_id, "broker": self.where})
        self.wake()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            log.warning("lost the broker; events stay in the outbox",
                        extra={"device_id": self.device_id, "broker": self.where,
                               "reason": str(reason)})

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        self._acked.append(mid)
        self.wake()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            command = decode_command(msg.topic, msg.payload)
        except PayloadError as exc:
            log.warning("bad command ignored",
                        extra={"device_id": self.device_id, "topic": msg.topic,
                               "reason": exc.reason})
            return
        if self._on_command is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_command, command)

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
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.credentials import CredentialStore
from agent.outbox import Outbox
from agent.paho_loop import PahoLoopDriver
from agent.reach import BrokerReach, current_error
from broker.messages import (
    Command,
    DeviceState,
    RotateCredentialsCommand,
    Status,
    decode_command,
    encode,
    utc_now,
)
from broker.topics import Channel, command_subscription, device_topic
from firmware_config.device_config import MqttLinkSettings
from ground.errors import PayloadError
from ground.logs import get_logger

__all__ = ["AgentLink"]

log = get_logger(__name__)

CommandHandler = Callable[[Command], None]
# CONNACK reasons meaning "wrong credentials" (MQTT 3.1.1 codes 4 and 5 map to these).
_AUTH_REFUSED = (134, 135)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """paho's socket-open callback: send each packet at once (TCP_NODELAY).

    paho never sets it; with Nagle's algorithm the tail of a larger event waited
    for the broker's delayed ACK, ~45 ms per larger device message in the field.
    """
    if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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
        credentials: CredentialStore | None = None,
        threaded: bool = True,
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
        if credentials is None and settings.credentials_file is not None:
            credentials = CredentialStore(settings.credentials_file)
        self._credentials = credentials
        self._password: str | None = None
        self._threaded = threaded
        # Every broker node to try (one for Mosquitto; a cluster's nodes); see _next_node.
        self._addresses = settings.addresses()
        self._node = 0
        self._driver: PahoLoopDriver | None = None
        self._driver_task: asyncio.Task[None] | None = None
        # Failed connection attempts, logged sparingly (paho retries in silence).
        self.reach = BrokerReach(device_id)
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self._password = self._candidates()[0] if self._candidates() else None
        client.username_pw_set(self.device_id, self._password)
        if self._settings.tls:
            client.tls_set(ca_certs=str(self._settings.ca_file) if self._settings.ca_file else None)
        offline = Status(device_id=self.device_id, state=DeviceState.OFFLINE, time=utc_now())
        client.will_set(device_topic(self.device_id, Channel.STATUS), encode(offline), 1, True)
        client.max_inflight_messages_set(self._window)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = _no_delay  # PahoLoopDriver calls it from its own
        return client

    @property
    def where(self) -> str:
        """host:port of the broker node in use."""
        if self._driver is not None:
            return self._driver.where
        host, port = self._addresses[self._node]
        return f"{host}:{port}"

    def _next_node(self, client: mqtt.Client) -> None:
        """Point paho's next reconnect at the next broker node (a cluster's failover).

        Called when the node in use cannot be reached or dropped the connection.
        paho keeps its session state (unacknowledged publishes are sent again) and
        the outbox hands over whatever is not acknowledged, so moving loses nothing.
        """
        if len(self._addresses) < 2:
            return
        self._node = (self._node + 1) % len(self._addresses)
        host, port = self._addresses[self._node]
        # paho refuses to change ``host`` while it counts the connection as open (it does
        # during these callbacks); connect_async resets that state and its loop's next
        # reconnect goes to the new address.
        client.connect_async(host, port, keepalive=self._settings.keepalive_s)
        log.info("trying another broker node",
                 extra={"device_id": self.device_id, "broker": self.where})

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; retry with backoff while the broker is away.

        Threaded (the default, one device per process): paho's own network
        thread. Otherwise the client is driven by the event loop itself, which
        lets one process hold thousands of simulated devices.
        """
        self._loop = loop
        if not self._threaded:
            self._driver = PahoLoopDriver(self._client, self._addresses,
                                          self._settings.keepalive_s, loop, self.device_id,
                                          reach=self.reach)
            self._driver_task = loop.create_task(self._driver.run(), name=f"mqtt-{self.device_id}")
            return
        self._client.connect_async(
            self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Say ``offline`` (a clean stop does not fire the Last Will) and disconnect."""
        if self._driver is not None:
            if self.connected.is_set():
                offline = Status(device_id=self.device_id, state=DeviceState.OFFLINE,
                                 time=utc_now())
                self._client.publish(
                    device_topic(self.device_id, Channel.STATUS), encode(offline), 1, True)
            if self._driver_task is not None:
                self._driver_task.cancel()
            self._driver.stop()
            return
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
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that coincides with the wake-up, and the stopping agent hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
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
            await self._outbox.delete(keys)
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
        records = await self._outbox.pending(free, busy, device_id=self.device_id)
        for record in records:
            info = self._client.publish(record.topic, record.payload, qos=1)
            key = (record.device_id, record.seq)
            self._inflight[key] = (info.mid, now)
            self._mid_to_key[info.mid] = key

    def _candidates(self) -> list[str]:
        configured = self._settings.password.get_secret_value() if self._settings.password else None
        if self._credentials is None:
            return [configured] if configured else []
        return self._credentials.candidates(configured)

    def _next_password(self, client: mqtt.Client) -> None:
        """Refused: try the next known password on paho's next reconnect."""
        candidates = self._candidates()
        if len(candidates) < 2:
            return
        index = candidates.index(self._password) if self._password in candidates else -1
        self._password = candidates[(index + 1) % len(candidates)]
        client.username_pw_set(self.device_id, self._password)
        log.info("trying another stored password",
                 extra={"device_id": self.device_id, "candidate": (index + 1) % len(candidates)})

    # paho callbacks (its network thread)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection",
                      extra={"device_id": self.device_id, "broker": self.where,
                             "reason": str(reason)})
            if reason.value in _AUTH_REFUSED:
                self._next_password(client)
            return
        if self._credentials is not None and self._password is not None:
            self._credentials.confirm(self._password)
        online = Status(device_id=self.device_id, state=DeviceState.ONLINE, time=utc_now())
        client.publish(device_topic(self.device_id, Channel.STATUS), encode(online), 1, True)
        client.subscribe(command_subscription(self.device_id), qos=1)
        self.connected.set()
        log.info("connected to broker", extra={"device_id": self.device_id, "broker": self.where,
                                               **self.reach.reached()})
        self.wake()

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        if self._threaded:  # the event-loop driver reports and moves on by itself
            self.reach.failed(self.where, current_error())
            self._next_node(client)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if self._threaded and reason.is_failure:
            self._next_node(_client)
        pending = self._credentials.pending if self._credentials is not None else None
        if pending is not None and pending != self._password:
            # A rotation is under way: the broker most likely dropped us because it
            # switched to the new password, so try that first.
            self._password = pending
            _client.username_pw_set(self.device_id, pending)
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
        if not msg.payload:
            return  # an empty retained message only clears the topic (the server's arm/disarm)
        try:
            command = decode_command(msg.topic, bytes(msg.payload))
        except PayloadError as exc:
            log.warning("bad command ignored",
                        extra={"device_id": self.device_id, "topic": msg.topic,
                               "reason": exc.reason})
            return
        if isinstance(command, RotateCredentialsCommand) and not self._take_up(command):
            return  # not stored, so not acknowledged: the server leaves the broker unchanged
        if self._on_command is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_command, command)

    def _take_up(self, command: RotateCredentialsCommand) -> bool:
        """Store a rotated password durably before the command is acknowledged."""
        if self._credentials is None:
            log.error("cannot rotate credentials: no credentials_file configured",
                      extra={"device_id": self.device_id})
            return False
        try:
            self._credentials.offer(command.password)
        except OSError as exc:
            log.error("cannot store the new password",
                      extra={"device_id": self.device_id, "reason": str(exc)})
            return False
        log.info("new broker password stored; switching when the broker does",
                 extra={"device_id": self.device_id})
        return True

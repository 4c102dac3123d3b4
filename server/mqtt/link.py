"""The server's MQTT connection: subscribe, receive, acknowledge after commit, publish.

A small asyncio client over :mod:`server.mqtt.wire` (why not paho: see that
module). Received messages go into an :class:`~server.mqtt.inbound.InboundBuffer`
that the consumer drains in batches. Acknowledgement is manual: the broker
keeps a message in the server's persistent session until it is acknowledged,
which the consumer does only after the database commit, so a server killed
between receipt and commit gets the message again on reconnect.

Publishing (commands to devices, QoS 1) works like paho's: messages wait in
memory while the broker is away and are sent, or re-sent, once it is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import threading
from collections.abc import Iterable

from broker.topics import device_subscription, shared
from ground.logs import get_logger
from server.config import MqttSettings
from server.mqtt.inbound import InboundBuffer, InboundMessage
from server.mqtt.wire import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    SUBACK,
    MqttProtocolError,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_pubacks,
    encode_publish,
    encode_subscribe,
    parse_connack,
    parse_disconnect,
    parse_puback,
    parse_suback,
    split_packets,
)

__all__ = ["MqttLink"]

log = get_logger(__name__)

# A week: the broker keeps queueing for a server that is down for maintenance.
_SESSION_EXPIRY_S = 7 * 24 * 3600
# Unacknowledged messages the broker may send us (MQTT 5): the consumer holds one
# batch being written and one being prepared, and the next should already be arriving.
_RECEIVE_MAXIMUM = 10_000
# The link stops reading the socket when this many received messages wait for the
# consumer, and reads again once it is down to the lower mark. Receive Maximum alone
# should bound them, but Mosquitto 2.0 stops honouring it for a reconnecting session's
# backlog once acknowledgements flow (86,000 of a 100,000-message backlog were seen
# waiting here; tests/server/test_mqtt_link.py shows it): without this, a server
# restarted after a long outage would hold all of it in memory.
# Not reading leaves the rest in the broker's queue and the kernel's socket buffers.
_PAUSE_READING_AT = _RECEIVE_MAXIMUM
_RESUME_READING_AT = _RECEIVE_MAXIMUM // 2
# Our own QoS 1 publishes awaiting PUBACK; Mosquitto's default receive maximum is larger.
_MAX_OUTGOING_INFLIGHT = 100
_CONNECT_TIMEOUT_S = 15.0
# How long a clean stop waits for the broker to close its end after our DISCONNECT.
_CLOSE_GRACE_S = 3.0
_SUBSCRIBE_ID = 1


class _Connection(asyncio.Protocol):
    """One TCP/TLS connection to the broker; :class:`MqttLink` outlives it."""

    def __init__(self, link: MqttLink, generation: int):
        self._link = link
        self.generation = generation
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # The socket itself is gone (``closed`` is set earlier, when we decide to drop it).
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connack: asyncio.Future[tuple[bool, int, str]] = (
            asyncio.get_running_loop().create_future())
        self.seen_packet = False
        # Reading paused because the consumer is behind (MqttLink.received).
        self.paused = False
        self.pause_logged = False
        # DISCONNECT sent: what still arrives is read and dropped until the broker closes.
        self.finishing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Split the bytes into packets and hand them on."""
        if self.finishing:
            return
        buf = self._buf
        buf += data
        self.seen_packet = True
        try:
            # The packet id is only meaningful on the connection it came on; ``mid``
            # carries the generation so an acknowledgement never crosses connections.
            publishes, others, used = split_packets(
                buf, self._link.protocol, InboundMessage, self.generation << 16)
        except MqttProtocolError as exc:
            self.abort(f"unreadable packet from the broker: {exc}")
            return
        del buf[:used]
        for ptype, body in others:
            try:
                self._control(ptype, body)
            except MqttProtocolError as exc:
                self.abort(f"unreadable packet from the broker: {exc}")
                return
        if publishes:
            self._link.received(publishes)

    def _control(self, ptype: int, body: bytes) -> None:
        protocol = self._link.protocol
        if ptype == CONNACK:
            connack = parse_connack(body, protocol=protocol)
            if not self.connack.done():
                self.connack.set_result(
                    (connack.session_present, connack.reason_code, connack.reason))
        elif ptype == PUBACK:
            packet_id, _code = parse_puback(body)
            self._link.published(packet_id)
        elif ptype == SUBACK:
            self._link.subscribe_answered(parse_suback(body, protocol=protocol).failed)
        elif ptype == DISCONNECT:
            self.abort(f"broker disconnected us (reason 0x{parse_disconnect(body):02x})")
        elif ptype != PINGRESP:
            log.warning("unexpected packet from the broker ignored",
                        extra={"broker": self._link.where, "packet_type": ptype})

    def write(self, data: bytes) -> None:
        """Send, if still connected."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self, reason: str) -> None:
        """Drop the connection (the link reconnects)."""
        if not self.closed.done():
            self.closed.set_result(reason)
        # A connection being finished is flushing our DISCONNECT: let it end by itself.
        if (self.transport is not None and not self.finishing
                and not self.transport.is_closing()):
            self.transport.abort()

    def finish(self) -> None:
        """Send DISCONNECT and end the connection without losing what we wrote before it.

        Closing a TCP socket that still holds unread bytes from the broker (a PINGRESP,
        a message) makes the kernel answer with RST, and the broker then drops whatever
        of ours it had not read yet, acknowledgements included: it logged "disconnected:
        Broken pipe" and sent four acknowledged messages again on the next session. So
        half-close instead, read and drop until the broker closes its end (it does on
        DISCONNECT), and only close after a grace period if it does not.
        """
        transport = self.transport
        if transport is None or transport.is_closing() or self.finishing:
            return
        self.finishing = True
        self.write(encode_disconnect())
        if self.paused:
            self.paused = False
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, transport.close)
        else:
            # TLS: asyncio's SSL transport already sends close_notify and reads until
            # the broker's own before it closes the socket.
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the link the connection is gone."""
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.closed.done():
            self.closed.set_result(str(exc) if exc else "connection closed")
        if not self.connack.done():
            self.connack.set_exception(ConnectionError("closed before CONNACK"))


class MqttLink:
    """A persistent-session MQTT client feeding an :class:`InboundBuffer`."""

    def __init__(self, settings: MqttSettings, buffer: InboundBuffer):
        self._settings = settings
        self._buffer = buffer
        self.protocol = settings.protocol
        self._task: asyncio.Task[None] | None = None
        self._conn: _Connection | None = None
        self._generation = 0
        self._next_packet_id = 1
        # Our QoS 1 publishes: waiting to be sent, and sent but not acknowledged.
        self._queued: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self._inflight: dict[int, tuple[str, bytes, bool]] = {}
        self.connected = threading.Event()
        self.subscribed = threading.Event()

    @property
    def where(self) -> str:
        """host:port of the broker, for messages."""
        return f"{self._settings.host}:{self._settings.port}"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; retry until the broker answers."""
        self._buffer.bind(loop)
        self._buffer.on_taken = self._taken
        self._task = loop.create_task(self._run(), name="mqtt")

    def stop(self) -> None:
        """Disconnect cleanly (the persistent session stays on the broker).

        Returns at once; :meth:`close` also waits until the broker has closed its end.
        """
        self._finish()

    async def close(self) -> None:
        """Disconnect cleanly and wait (a few seconds at most) until the broker has read
        everything we sent, acknowledgements included, and closed the connection."""
        conn = self._finish()
        if conn is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), _CLOSE_GRACE_S + 1)

    def _finish(self) -> _Connection | None:
        if self._task is not None:
            self._task.cancel()
        conn = self._conn
        if conn is not None:
            conn.finish()
        self._gone()
        return conn

    # -- receiving ---------------------------------------------------------------

    def received(self, messages: list[InboundMessage]) -> None:
        """Queue received messages for the consumer; stop reading while it is far behind."""
        self._buffer.extend(messages)
        conn = self._conn
        if (conn is not None and not conn.paused and conn.transport is not None
                and len(self._buffer) >= _PAUSE_READING_AT):
            conn.paused = True
            conn.transport.pause_reading()
            if not conn.pause_logged:  # it pauses every few batches while a backlog drains
                conn.pause_logged = True
                log.info("consumer behind: reading from the broker paused until it catches up "
                         "(further pauses on this connection not logged)",
                         extra={"broker": self.where, "buffered": len(self._buffer)})

    def _taken(self) -> None:
        conn = self._conn
        if (conn is not None and conn.paused and conn.transport is not None
                and len(self._buffer) <= _RESUME_READING_AT):
            conn.paused = False
            conn.transport.resume_reading()

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one received message (after its data is committed)."""
        if qos > 0:
            self.ack_many([mid])

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge received QoS 1 messages in one write.

        Messages from an earlier connection are skipped: the broker has already
        re-sent them on the current one (they stay in the session until acked),
        and those copies are acknowledged when they are committed.
        """
        conn = self._conn
        if conn is None:
            return
        generation = conn.generation
        ids = [mid & 0xFFFF for mid in mids if mid >> 16 == generation]
        if ids:
            conn.write(encode_pubacks(ids))

    # -- publishing --------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish (commands to devices); QoS 1 messages wait while disconnected."""
        if qos == 0:
            if self._conn is not None and self.connected.is_set():
                self._conn.write(encode_publish(topic, payload, qos=0, retain=retain,
                                                packet_id=0, protocol=self.protocol))
            return
        self._queued.append((topic, payload, retain))
        self._pump()

    def published(self, packet_id: int) -> None:
        """The broker acknowledged one of our publishes."""
        self._inflight.pop(packet_id, None)
        self._pump()

    def _pump(self) -> None:
        conn = self._conn
        if conn is None or not self.connected.is_set():
            return
        while self._queued and len(self._inflight) < _MAX_OUTGOING_INFLIGHT:
            topic, payload, retain = self._queued.popleft()
            packet_id = self._new_packet_id()
            self._inflight[packet_id] = (topic, payload, retain)
            conn.write(encode_publish(topic, payload, qos=1, retain=retain,
                                      packet_id=packet_id, protocol=self.protocol))

    def _new_packet_id(self) -> int:
        while True:
            packet_id = self._next_packet_id
            self._next_packet_id = packet_id % 0xFFFF + 1
            if packet_id not in self._inflight:
                return packet_id

    def _resend_inflight(self, conn: _Connection) -> None:
        for packet_id, (topic, payload, retain) in sorted(self._inflight.items()):
            conn.write(encode_publish(topic, payload, qos=1, retain=retain, packet_id=packet_id,
                                      protocol=self.protocol, dup=True))

    # -- subscribing -------------------------------------------------------------

    def _topic_filters(self) -> list[str]:
        base = device_subscription()
        group = self._settings.shared_group
        return [shared(group, base) if group else base]

    def subscribe_answered(self, failed: list[str]) -> None:
        """SUBACK arrived."""
        if failed:
            log.error("broker refused the subscription",
                      extra={"broker": self.where, "reasons": failed})
            return
        # From here on the broker queues device messages for this server's session,
        # even while the server is down: operators and tests wait for this line.
        self.subscribed.set()
        log.info("subscribed", extra={"broker": self.where, "filters": self._topic_filters()})

    # -- connection lifecycle ----------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self._settings.tls:
            return None
        ca = str(self._settings.ca_file) if self._settings.ca_file else None
        return ssl.create_default_context(cafile=ca)

    def _gone(self) -> None:
        self._conn = None
        self.connected.clear()
        self.subscribed.clear()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            reason = await self._connect_once()
            self._gone()
            if reason is None:  # a session that ran and ended: reconnect promptly
                delay = 1.0
            else:
                log.warning("cannot reach the broker; retrying",
                            extra={"client_id": self._settings.client_id, "broker": self.where,
                                   "error": reason, "retry_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _connect_once(self) -> str | None:
        """Connect, serve the connection until it drops; return why it could not connect."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        self._generation = (self._generation + 1) % 0x10000 or 1
        conn = _Connection(self, self._generation)
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: conn, settings.host, settings.port, ssl=self._ssl_context(),
                server_hostname=settings.host if settings.tls else None),
                _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            return str(exc) or type(exc).__name__
        password = settings.password.get_secret_value() if settings.password else None
        conn.write(encode_connect(
            settings.client_id, protocol=self.protocol, keepalive=settings.keepalive_s,
            clean_start=False, username=settings.username, password=password,
            session_expiry_s=_SESSION_EXPIRY_S if self.protocol == 5 else 0,
            receive_maximum=_RECEIVE_MAXIMUM if self.protocol == 5 else 0))
        try:
            session_present, code, why = await asyncio.wait_for(conn.connack, _CONNECT_TIMEOUT_S)
        except (ConnectionError, TimeoutError) as exc:
            conn.abort("no CONNACK")
            return f"no answer to CONNECT: {exc or type(exc).__name__}"
        if code:
            log.error("broker refused the connection", extra={"broker": self.where, "reason": why})
            conn.abort(why)
            return f"refused: {why}"
        self._conn = conn
        self.connected.set()
        log.info("connected to broker", extra={"broker": self.where,
                                               "client_id": settings.client_id,
                                               "session_present": session_present})
        conn.write(encode_subscribe(_SUBSCRIBE_ID, self._topic_filters(), protocol=self.protocol))
        self._resend_inflight(conn)
        self._pump()
        keepalive = loop.create_task(self._keepalive(conn), name="mqtt-keepalive")
        try:
            reason = await conn.closed
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            conn.abort("closing")
        log.warning("disconnected from broker; reconnecting",
                    extra={"broker": self.where, "reason": reason})
        return None

    async def _keepalive(self, conn: _Connection) -> None:
        """Ping every half keepalive; drop a connection that stays silent for a whole one."""
        interval = max(self._settings.keepalive_s / 2, 1.0)
        silent_rounds = 0
        while True:
            conn.seen_packet = False
            conn.write(encode_pingreq())
            await asyncio.sleep(interval)
            # While reading is paused, silence is ours, not the broker's.
            silent_rounds = 0 if conn.seen_packet or conn.paused else silent_rounds + 1
            if silent_rounds >= 2:
                conn.abort("no answer to keepalive pings")
                return

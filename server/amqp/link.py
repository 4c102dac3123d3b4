"""The server's link to a RabbitMQ cluster: consume the replicated ingest queue over AMQP.

The RabbitMQ profile's counterpart of :mod:`server.mqtt.link`, behind the same
faces (``start``/``stop``, ``ack_many`` for the consumer, ``publish`` for commands,
``connected``/``subscribed``), so the consumer, ingest and rules are the same.

* Devices publish MQTT to any node; the MQTT plugin routes every device topic into
  the quorum queue ``doorwatch.ingest`` (see broker/rabbitmq/definitions.py).
* Every server instance consumes that one queue: competing consumers. The broker
  hands each message to one of them and keeps it until that instance acks it. The
  consumer acks only after the batch's commit; if an instance dies (or its node
  does), its unacknowledged messages go to the other instances at once (unlike an
  MQTT shared subscription on Mosquitto, which keeps them for the dead session).
* ``prefetch`` bounds what an instance holds unacknowledged: the consumer's batch
  being written and the one being prepared.
* The link knows every node; when its node dies it connects to the next one.
  Redeliveries are harmless: ``(device_id, seq)`` is unique in the database.

Commands to devices are published on ``amq.topic`` with the topic's routing key
(persistent, so a device's persistent session gets them at QoS 1), with publisher
confirms; they wait in memory while no node is reachable. RabbitMQ does not keep
AMQP-published messages as MQTT retained messages: a device with a persistent
session gets its commands from its session queue, which is what the agent uses.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from broker.rabbitmq.definitions import (
    EXCHANGE,
    INGEST_BINDING,
    INGEST_QUEUE,
    routing_key,
    topic_of,
)
from ground.logs import get_logger
from server.config import AmqpSettings
from server.mqtt.inbound import InboundBuffer, InboundMessage

__all__ = ["AmqpLink"]

log = get_logger(__name__)

# The delivery tag lives in the low bits of a message's ``mid``, the connection's
# generation above it: an ack never reaches a channel the message did not come on.
_TAG_BITS = 48
_TAG_MASK = (1 << _TAG_BITS) - 1
_CONNECT_TIMEOUT_S = 10.0


class AmqpLink:
    """Consumes the ingest queue from whichever node answers; publishes commands."""

    def __init__(self, settings: AmqpSettings, buffer: InboundBuffer):
        self._settings = settings
        self._buffer = buffer
        self._task: asyncio.Task[None] | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._generation = 0
        self._node = 0
        self._outgoing: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake_publisher = asyncio.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()

    @property
    def where(self) -> str:
        """The node in use (or the first one), for messages."""
        nodes = self._settings.nodes
        return nodes[self._node % len(nodes)]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background, moving from node to node until one answers."""
        self._buffer.bind(loop)
        self._task = loop.create_task(self._run(), name="amqp")

    def stop(self) -> None:
        """Stop consuming; unacknowledged messages return to the queue for the others."""
        if self._task is not None:
            self._task.cancel()
        connection = self._connection
        if connection is not None:
            # Closing flushes nothing we need: unacked deliveries go back to the queue.
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(connection.close())
        self._gone()

    async def close(self) -> None:
        """Stop consuming and wait (a few seconds at most) for the connection to close."""
        if self._task is not None:
            self._task.cancel()
        connection = self._connection
        self._gone()
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    # -- receiving -------------------------------------------------------------------

    def _on_message(self, message: DeliveredMessage, generation: int) -> None:
        delivery = message.delivery
        assert isinstance(delivery, Basic.Deliver)
        self._buffer.put_nowait(InboundMessage(
            topic_of(delivery.routing_key or ""), message.body,
            (generation << _TAG_BITS) | (delivery.delivery_tag or 0), 1))

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge a committed batch: one ``basic.ack multiple`` up to its last tag.

        The consumer commits batches strictly in delivery order, so every earlier
        delivery of this channel is committed (and acked) already. Messages from an
        earlier connection are skipped: the broker has put them back in the queue.
        """
        channel = self._channel
        if channel is None:
            return
        generation = self._generation
        tags = [mid & _TAG_MASK for mid in mids if mid >> _TAG_BITS == generation]
        if tags:
            task = asyncio.ensure_future(channel.basic_ack(max(tags), multiple=True, wait=False))
            task.add_done_callback(_log_failure)

    # -- publishing ------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a command for a device (sent with publisher confirms; kept while offline)."""
        del qos, retain  # always persistent; see the module docstring on retained messages
        self._outgoing.append((topic, payload))
        self._wake_publisher.set()

    async def _publish_loop(self, channel: aiormq.abc.AbstractChannel) -> None:
        while True:
            while self._outgoing:
                topic, payload = self._outgoing[0]
                await channel.basic_publish(
                    payload, exchange=EXCHANGE, routing_key=routing_key(topic),
                    properties=Basic.Properties(delivery_mode=2))
                self._outgoing.popleft()  # confirmed by the broker
            self._wake_publisher.clear()
            await self._wake_publisher.wait()

    # -- connection lifecycle ----------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self._settings.tls:
            return None
        ca = str(self._settings.ca_file) if self._settings.ca_file else None
        return ssl.create_default_context(cafile=ca)

    def _gone(self) -> None:
        self._channel = None
        self._connection = None
        self.connected.clear()
        self.subscribed.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            reason = await self._session(self.where)
            self._gone()
            failures = failures + 1 if reason else 0
            log.warning("lost the broker node; trying the next one",
                        extra={"broker": self.where, "reason": reason or "connection closed"})
            self._node += 1
            # A full round of nodes refused: back off before the next round.
            pause = 0.2 if failures < len(self._settings.nodes) else min(
                2.0 ** (failures // len(self._settings.nodes)), 30.0)
            await asyncio.sleep(pause)

    async def _session(self, node: str) -> str | None:
        settings = self._settings
        scheme = "amqps" if settings.tls else "amqp"
        password = settings.password.get_secret_value() if settings.password else ""
        url = f"{scheme}://{settings.username}:{password}@{node}/"
        try:
            connection = await asyncio.wait_for(
                aiormq.connect(url, context=self._ssl_context(),
                               client_properties={"connection_name": settings.client_id}),
                _CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, aiormq.exceptions.AMQPError, ssl.SSLError) as exc:
            return str(exc) or type(exc).__name__
        self._generation += 1
        generation = self._generation
        self._connection = connection
        publisher: asyncio.Task[None] | None = None
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.basic_qos(prefetch_count=settings.prefetch)
            # Both idempotent: broker init made them; a server started against a
            # freshly reset cluster makes them before consuming.
            await channel.queue_declare(INGEST_QUEUE, durable=True,
                                        arguments={"x-queue-type": "quorum"})
            await channel.queue_bind(INGEST_QUEUE, EXCHANGE, routing_key=INGEST_BINDING)
            self._channel = channel
            self.connected.set()
            log.info("connected to broker node", extra={"broker": node,
                                                        "client_id": settings.client_id})
            publisher = asyncio.get_running_loop().create_task(
                self._publish_loop(channel), name="amqp-publish")

            def on_message(message: DeliveredMessage) -> Any:
                self._on_message(message, generation)

            await channel.basic_consume(INGEST_QUEUE, _sync(on_message), no_ack=False)
            self.subscribed.set()
            log.info("consuming", extra={"broker": node, "queue": INGEST_QUEUE})
            closing = channel.closing
            await asyncio.shield(closing)
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the node died, the channel closed, a permission was refused
            return f"{type(exc).__name__}: {exc}"
        finally:
            if publisher is not None:
                publisher.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)


def _sync(callback: Any) -> Any:
    """aiormq awaits its consumer callback; ours only appends to the buffer."""
    async def call(message: DeliveredMessage) -> None:
        callback(message)
    return call


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # The channel is gone; its unacked messages are redelivered (harmless).
        log.warning("acknowledgement not sent", extra={"reason": repr(task.exception())})

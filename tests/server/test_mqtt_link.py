"""The server's own MQTT client against a real Mosquitto with the configuration we ship."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import paho.mqtt.client as paho
import pytest

from broker.mosquitto.tls import make_ca
from broker.topics import command_topic
from server.config import MqttSettings
from server.mqtt.inbound import InboundBuffer, InboundMessage
from server.mqtt.link import _PAUSE_READING_AT, MqttLink
from tests.conftest import Mosquitto
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


def _settings(mosquitto: Mosquitto, **overrides: Any) -> MqttSettings:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": mosquitto.port,
                            "password": mosquitto.broker.server_password,
                            "client_id": "doorwatch-server-linktest", "keepalive_s": 5}
    base.update(overrides)
    return MqttSettings(**base)


def _broker_log(mosquitto: Mosquitto) -> str:
    return mosquitto.broker.log_file.read_text(errors="replace")


def _disconnects(mosquitto: Mosquitto, settings: MqttSettings) -> int:
    """Ends of the link's connections the broker has logged (on the TLS listener the client
    id is the user name): a DISCONNECT (with or without a reason), the socket closed or a
    keepalive timeout. Each comes after the broker has handled every packet sent before it
    on that connection, which is all the callers need."""
    log = _broker_log(mosquitto)
    return sum(log.count(f"Client {name} {end}")
               for name in {settings.client_id, settings.username}
               for end in ("disconnected", "closed its connection.",
                           "has exceeded timeout"))


@asynccontextmanager
async def _running(mosquitto: Mosquitto,
                   settings: MqttSettings) -> AsyncIterator[tuple[MqttLink, InboundBuffer]]:
    """The link, stopped at the end; once the broker has handled its DISCONNECT, and with
    it (same connection, in order) every PUBACK the test sent before."""
    buffer = InboundBuffer()
    link = MqttLink(settings, buffer)
    link.start(asyncio.get_running_loop())
    try:
        yield link, buffer
    finally:
        connected = link.connected.is_set()
        before = _disconnects(mosquitto, settings)
        await link.close()
        if connected:
            await wait_until_async(lambda: _disconnects(mosquitto, settings) > before,
                                   "the broker to log the end of the link's connection", 40,
                                   detail=lambda: _broker_log(mosquitto)[-1500:])


def _device(mosquitto: Mosquitto, device_id: str, inflight: int = 20) -> paho.Client:
    password = mosquitto.add_device(device_id)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=device_id,
                         protocol=paho.MQTTv311, clean_session=False)
    client.max_inflight_messages_set(inflight)
    client.username_pw_set(device_id, password)
    mosquitto.connect_device(client)
    client.loop_start()
    return client


def _publish_events(client: paho.Client, device_id: str, count: int) -> None:
    for i in range(count):
        client.publish(f"doorwatch/v1/dev/{device_id}/event", f"payload-{i}".encode(),
                       qos=1).wait_for_publish(5)


async def _drain(buffer: InboundBuffer, count: int) -> list[InboundMessage]:
    got: list[InboundMessage] = []
    while len(got) < count:
        got += await asyncio.wait_for(buffer.next_batch(count - len(got), 0), 10)
    return got


async def _assert_nothing_left(mosquitto: Mosquitto, settings: MqttSettings) -> None:
    """Reconnect with the same client id: the session holds no unacknowledged message."""
    async with _running(mosquitto, settings) as (link, buffer):
        await wait_until_async(link.subscribed.is_set, "the link subscribed")
        # A window, not a wait: nothing may arrive (a queued message would come at once).
        await asyncio.sleep(0.5)
        assert len(buffer) == 0


@pytest.mark.parametrize("protocol", [5, 311])
async def test_unacknowledged_messages_come_back_and_acknowledged_ones_do_not(
    mosquitto: Mosquitto, protocol: int
) -> None:
    settings = _settings(mosquitto, protocol=protocol)
    device = _device(mosquitto, "door-1")
    try:
        async with _running(mosquitto, settings) as (link, buffer):
            await wait_until_async(link.subscribed.is_set, "the link subscribed")
            _publish_events(device, "door-1", 10)
            first = await _drain(buffer, 10)
            assert [m.payload for m in first] == [f"payload-{i}".encode() for i in range(10)]
            assert {m.topic for m in first} == {"doorwatch/v1/dev/door-1/event"}
            link.ack_many([m.mid for m in first[:6]])  # "committed" the first six only
        # A new process with the same client id: the broker re-sends exactly the four.
        async with _running(mosquitto, settings) as (link, buffer):
            again = await _drain(buffer, 4)
            assert [m.payload for m in again] == [f"payload-{i}".encode() for i in range(6, 10)]
            link.ack_many([m.mid for m in again])
        await _assert_nothing_left(mosquitto, settings)
    finally:
        device.loop_stop()
        device.disconnect()


async def test_messages_in_flight_across_a_broker_restart_are_resent_and_acked_once(
    mosquitto: Mosquitto,
) -> None:
    settings = _settings(mosquitto)
    device = _device(mosquitto, "door-2")
    try:
        async with _running(mosquitto, settings) as (link, buffer):
            await wait_until_async(link.subscribed.is_set, "the link subscribed")
            _publish_events(device, "door-2", 3)
            old = await _drain(buffer, 3)
            mosquitto.restart()  # the connection drops before the batch is "committed"
            await wait_until_async(lambda: not link.connected.is_set(),
                                   "the link to see the restart")
            await wait_until_async(link.subscribed.is_set, "the link subscribed again", 30)
            resent = await _drain(buffer, 3)
            assert [m.payload for m in resent] == [m.payload for m in old]
            assert link._conn is not None
            written: list[bytes] = []
            real_write = link._conn.write
            link._conn.write = lambda data: (written.append(data), real_write(data))  # type: ignore[method-assign]
            # Packet ids of the old connection mean nothing on the new one: not sent.
            link.ack_many([m.mid for m in old])
            assert written == []
            link.ack_many([m.mid for m in resent])
            assert len(written) == 1
            assert len(written[0]) == 4 * 3
        await _assert_nothing_left(mosquitto, settings)
    finally:
        device.loop_stop()
        device.disconnect()


async def test_commands_published_while_the_broker_is_down_are_delivered_later(
    mosquitto: Mosquitto,
) -> None:
    device = _device(mosquitto, "door-3")
    received: list[bytes] = []
    device.on_message = lambda _c, _u, msg: received.append(msg.payload)
    subacks: list[object] = []
    device.on_subscribe = lambda *answer: subacks.append(answer)
    device.subscribe(command_topic("door-3", "ping"), qos=1)
    await wait_until_async(lambda: subacks, "the device's SUBACK")
    async with _running(mosquitto, _settings(mosquitto)) as (link, _buffer):
        await wait_until_async(link.connected.is_set, "the link connected")
        link.publish(command_topic("door-3", "ping"), b"one")
        await wait_until_async(lambda: received == [b"one"], "the device to receive one",
                               detail=lambda: f"received {received}")
        mosquitto.stop()
        await wait_until_async(lambda: not link.connected.is_set(), "the link to see the stop")
        link.publish(command_topic("door-3", "ping"), b"two")
        link.publish(command_topic("door-3", "ping"), b"three")
        mosquitto.start()
        # "one" may come twice: the test saw it in on_message, before paho sent its PUBACK,
        # so the broker may have stopped with it still in flight and rightly redelivers it
        # (QoS 1). "two" and "three", queued by the link while the broker was down, must
        # each come exactly once and in order after it.
        await wait_until_async(
            lambda: list(dict.fromkeys(received)) == [b"one", b"two", b"three"],
            "one, two, three at the device", 40, detail=lambda: f"received {received}")
        assert received.count(b"two") == 1, received
        assert received.count(b"three") == 1, received
        assert received[-2:] == [b"two", b"three"], received
    device.loop_stop()
    device.disconnect()


async def test_tls_with_the_broker_ca_connects_and_receives(mosquitto: Mosquitto) -> None:
    device = _device(mosquitto, "door-4")
    # On the TLS listener the client id is the user name (use_username_as_clientid).
    settings = _settings(mosquitto, port=mosquitto.tls_port, tls=True,
                         ca_file=mosquitto.broker.ca_cert_file, host="127.0.0.1")
    try:
        async with _running(mosquitto, settings) as (link, buffer):
            await wait_until_async(link.subscribed.is_set, "the link subscribed")
            _publish_events(device, "door-4", 2)
            assert [m.payload for m in await _drain(buffer, 2)] == [b"payload-0", b"payload-1"]
    finally:
        device.loop_stop()
        device.disconnect()


async def test_tls_against_another_ca_is_refused_and_said(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    other = tmp_path / "other-ca.crt"
    other.write_bytes(make_ca("impostor CA").cert_pem)  # not the broker's signer
    settings = _settings(mosquitto, port=mosquitto.tls_port, tls=True, ca_file=other)
    with caplog.at_level(logging.WARNING):
        async with _running(mosquitto, settings) as (link, _buffer):
            await wait_until_async(lambda: any("cannot reach the broker" in r.getMessage()
                                               for r in caplog.records),
                                   "'cannot reach the broker' logged")
            assert not link.connected.is_set()
    errors = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any("CERTIFICATE_VERIFY_FAILED" in e for e in errors), errors


async def test_a_wrong_password_is_reported_as_refused(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(mosquitto, password="not-the-password")
    with caplog.at_level(logging.WARNING):
        async with _running(mosquitto, settings) as (link, _buffer):
            await wait_until_async(lambda: any("refused the connection" in r.getMessage()
                                               for r in caplog.records),
                                   "'refused the connection' logged")
            assert not link.connected.is_set()
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records]
    assert any(r in ("not authorized", "bad user name or password") for r in reasons), reasons


@pytest.mark.parametrize("protocol", [5, 311])
async def test_a_large_backlog_waits_in_the_broker_not_in_server_memory(
    mosquitto: Mosquitto, protocol: int
) -> None:
    """A server restarted after an outage must not read the whole backlog into memory.

    The consumer is slower than the broker: what waits for it must stay near the
    link's mark (Mosquitto 2.0, once acknowledgements flow, sends a reconnecting
    session's backlog far past Receive Maximum: 86,000 of 100,000 were seen
    waiting), and every message still arrives, each once.
    """
    settings = _settings(mosquitto, protocol=protocol)
    async with _running(mosquitto, settings) as (link, buffer):  # the session, so the broker queues
        await wait_until_async(link.subscribed.is_set, "the link subscribed")
    device = _device(mosquitto, "door-backlog", inflight=1000)
    total = 3 * _PAUSE_READING_AT
    padding = "x" * 160  # about 1,200 messages per 256 KiB socket read
    try:
        infos = [device.publish("doorwatch/v1/dev/door-backlog/event",
                                f"{i:06d}{padding}".encode(), qos=1) for i in range(total)]
        for info in infos:  # each: after a reconnect, resent ones may be acked later
            info.wait_for_publish(60)
        assert all(info.is_published() for info in infos)
        async with _running(mosquitto, settings) as (link, buffer):
            got: list[InboundMessage] = []
            most = 0
            while len(got) < total:
                batch = await asyncio.wait_for(buffer.next_batch(1000, 0), 10)
                # Not a wait: the consumer's "storing", so it is slower than the broker.
                await asyncio.sleep(0.02)
                link.ack_many([m.mid for m in batch])
                got += batch
                most = max(most, len(buffer))
            assert most < _PAUSE_READING_AT + 2_000, f"{most} messages read ahead"
            assert sorted(int(m.payload[:6]) for m in got) == list(range(total))
        await _assert_nothing_left(mosquitto, settings)
    finally:
        device.loop_stop()
        device.disconnect()

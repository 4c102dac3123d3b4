"""Issue 17 item 1: the loopback listener and client-id takeover, attacked with real clients.

The probe: a local process with any device's password connected to the
plaintext loopback listener with the server's client id and kicked the
server off (20 of 30 PUBACKed events never reached the database); the same
trick with client id ``door-a`` dropped door-a's TLS connection. Now the
loopback listener knows the service accounts only, and on every listener the
client id is the username.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from broker.messages import Event, EventKind, encode, utc_now
from broker.mosquitto.directory import ADMIN_USER, SERVER_USER
from broker.topics import Channel, device_topic
from server.service import serve
from tests.broker.helpers import Client, connect
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings
from tests.server.helpers import scalar, seed
from tests.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.broker

EVENT = "doorwatch/v1/dev/{}/event"


def test_no_device_credential_works_on_the_loopback_listener(mosquitto: Mosquitto) -> None:
    password = mosquitto.add_device("door-a")
    local = connect(mosquitto, "door-a", password, tls=False)
    assert local.refused
    assert local.connack == "Not authorized"
    local.close()
    # The same credential over TLS works; the service accounts work on loopback.
    for client in (connect(mosquitto, "door-a", password),
                   connect(mosquitto, SERVER_USER, mosquitto.broker.server_password, tls=False),
                   connect(mosquitto, ADMIN_USER, mosquitto.admin_password, tls=False)):
        assert not client.refused, client.connack
        client.close()


def test_a_devices_session_cannot_be_taken_over_from_either_listener(
    mosquitto: Mosquitto,
) -> None:
    a = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    password_b = mosquitto.add_device("door-b")
    attackers = [
        connect(mosquitto, "door-b", password_b, client_id="door-a", tls=False),
        connect(mosquitto, ADMIN_USER, mosquitto.admin_password, client_id="door-a", tls=False),
        connect(mosquitto, "door-b", password_b, client_id="door-a"),
    ]
    assert attackers[0].refused
    # door-a is still connected: what it publishes arrives.
    watcher = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password, tls=False)
    watcher.subscribe("doorwatch/v1/dev/#")
    a.publish(EVENT.format("door-a"), b"still here")
    wait_until(lambda: watcher.messages == [(EVENT.format("door-a"), b"still here")],
               "door-a's message, and only it, at the watcher",
               detail=lambda: f"watcher got {watcher.messages}")
    assert a.disconnects == []
    for client in (a, watcher, *attackers):
        client.close()


def _event(seq: int) -> bytes:
    return encode(Event(device_id="door-a", seq=seq, time=utc_now(), kind=EventKind.HANDOVER,
                        armed=True))


async def test_the_servers_session_cannot_be_taken_over_and_no_event_is_lost(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    password_a, password_b = mosquitto.add_device("door-a"), mosquitto.add_device("door-b")
    settings = server_settings(tmp_path, mosquitto)
    server_client_id = settings.mqtt.client_id
    topic = device_topic("door-a", Channel.EVENT)
    async with serve(settings) as server:
        await seed(server.db, device="door-a")
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        device = await asyncio.to_thread(connect, mosquitto, "door-a", password_a)

        async def send(seqs: range) -> None:
            for seq in seqs:
                await asyncio.to_thread(device.publish, topic, _event(seq))

        async def stored(count: int) -> bool:
            return await scalar(server.db, "SELECT COUNT(*) FROM events") >= count

        await send(range(1, 11))
        await wait_until_async(lambda: stored(10), "10 events stored")
        # Attackers claim the server's client id (clean session: on the old config
        # this wiped the server's queue) and hold on while door-a keeps sending.
        attackers: list[Client] = []
        for username, password, tls in (
                ("door-b", password_b, False),                    # a device, locally
                (ADMIN_USER, mosquitto.admin_password, False),    # the admin account
                ("door-b", password_b, True)):                    # a device, over TLS
            attackers.append(await asyncio.to_thread(
                connect, mosquitto, username, password, client_id=server_client_id, tls=tls))
        refused = [attacker.refused for attacker in attackers]
        await send(range(11, 21))
        for attacker in attackers:
            await asyncio.to_thread(attacker.close)
        await send(range(21, 31))
        await wait_until_async(lambda: stored(30), "30 events stored", 15)
        await asyncio.to_thread(device.close)
        seqs = [r["seq"] for r in await server.db.fetch_all("SELECT seq FROM events")]
    assert sorted(seqs) == list(range(1, 31))
    assert refused == [True, False, False]  # the other two got sessions of their own


def test_every_server_instance_has_an_account_and_a_session_of_its_own(
    mosquitto: Mosquitto,
) -> None:
    user, password = mosquitto.broker.add_server("two")
    mosquitto.reload()
    assert user == "doorwatch-server-two"
    one = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password, tls=False,
                  client_id="doorwatch-server-host")
    two = connect(mosquitto, user, password, tls=False, client_id="doorwatch-server-host")
    for client in (one, two):
        assert not client.refused, client.connack
        client.subscribe("doorwatch/v1/dev/#")
    device = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    device.publish(EVENT.format("door-a"), json.dumps({"hello": 1}).encode())
    # Both read device topics (the ACL has a block per server account); neither kicked
    # the other off although both claimed the same (default) client id.
    wait_until(lambda: len(one.messages) == 1 and len(two.messages) == 1,
               "the event at both server accounts, once each",
               detail=lambda: f"one {one.messages}, two {two.messages}")
    assert one.disconnects == []
    assert two.disconnects == []
    for client in (one, two, device):
        client.close()


def test_sys_topics_stay_hidden_on_both_listeners(mosquitto: Mosquitto) -> None:
    """Mosquitto answers a $SYS subscription at once with retained topics (its version):
    nobody gets them, while each client's own traffic still arrives."""
    device = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    server = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password, tls=False)
    admin = connect(mosquitto, ADMIN_USER, mosquitto.admin_password, tls=False)
    for client in (device, server, admin):
        client.subscribe("$SYS/#")
        client.subscribe("#")
    server.publish("doorwatch/v1/cmd/door-a/ping", b"to a")
    device.publish(EVENT.format("door-a"), b"from a")
    wait_until(lambda: device.topics() == ["doorwatch/v1/cmd/door-a/ping"],
               "the device's ping, and only it", detail=lambda: str(device.topics()))
    wait_until(lambda: server.topics() == [EVENT.format("door-a")],
               "the event, and only it, at the server", detail=lambda: str(server.topics()))
    wait_until(lambda: admin.topics() == [EVENT.format("door-a")],
               "the event, and only it, at the admin", detail=lambda: str(admin.topics()))
    for client in (device, server, admin):
        assert not [t for t in client.topics() if t.startswith("$SYS")]
        client.close()

"""provision, bundle, install, TLS; revoke; rotation without loss; spoofing audited.

All against a real Mosquitto on our generated configuration, with the real
server (over TLS) and a real SQLite database where the server is involved.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.classify import ScriptedClassifier
from agent.credentials import CREDENTIALS_FILE, CredentialStore, install_bundle
from agent.service import Agent, running_agent
from broker.messages import Event, EventKind, encode, utc_now
from broker.topics import Channel, device_topic
from firmware_config.device_config import DeviceConfig, load_device_config
from sensors.door import make_pin_factory
from server.config import ServerSettings
from server.db.base import Database
from server.db.connect import open_database
from server.domain.provisioning import (
    ProvisioningError,
    RotationInProgressError,
    provision_device,
    revoke_device,
    rotate_device,
)
from server.service import serve
from tests.broker.helpers import connect, outbox_empty, produce_rotation_events
from tests.conftest import Mosquitto
from tests.e2e.helpers import server_settings
from tests.waiting import wait_until_async

pytestmark = pytest.mark.broker


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """The server's database (SQLite), migrated."""
    database = await open_database(f"sqlite:///{tmp_path / 'admin.db'}")
    yield database
    await database.close()


async def provision_and_install(
    db: Database, mosquitto: Mosquitto, tmp_path: Path, device_id: str
) -> DeviceConfig:
    """What the operator and the installer do: provision, copy the bundle, install it."""
    bundle = tmp_path / f"{device_id}.bundle.json"
    reloaded = await provision_device(db, mosquitto.broker, device_id, household_id=None,
                                      bundle_path=bundle)
    assert reloaded
    installed = install_bundle(bundle, tmp_path / "etc" / device_id,
                               data_dir=tmp_path / "data" / device_id)
    return load_device_config(installed.config_file)


def scripted_agent(config: DeviceConfig) -> Agent:
    """The installed device as an agent on mock pins with a scripted classifier,
    heartbeating every 0.5 s."""
    config = config.model_copy(update={"pin_factory": "mock", "heartbeat_interval_s": 0.5})
    return Agent(config, pin_factory=make_pin_factory("mock"), classifier=ScriptedClassifier())


def stored_password(config: DeviceConfig) -> str:
    """The password the device keeps in its credentials file."""
    assert config.mqtt.credentials_file is not None
    current = CredentialStore(config.mqtt.credentials_file).current
    assert current is not None
    return current


async def test_provisioned_device_connects_over_tls_from_its_bundle(
    db: Database, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = await provision_and_install(db, mosquitto, tmp_path, "door-a")
    assert config.mqtt.tls
    assert config.mqtt.port == mosquitto.tls_port
    assert config.mqtt.host == "127.0.0.1"
    assert config.mqtt.password is None
    for secret in (tmp_path / "door-a.bundle.json", config.mqtt.credentials_file):
        assert secret is not None
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    client = connect(mosquitto, "door-a", stored_password(config), ca_file=config.mqtt.ca_file)
    assert not client.refused
    client.close()
    device = await db.fetch_one("SELECT device_id, revoked_at FROM devices")
    actions = await db.fetch_all("SELECT action FROM audit_log ORDER BY id")
    assert device == {"device_id": "door-a", "revoked_at": None}
    assert [a["action"] for a in actions] == ["device.register", "device.provision"]


async def test_provisioning_an_existing_or_reserved_id_is_refused(
    db: Database, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await provision_and_install(db, mosquitto, tmp_path, "door-a")
    with pytest.raises(ProvisioningError, match="already provisioned"):
        await provision_device(db, mosquitto.broker, "door-a", household_id=None,
                               bundle_path=tmp_path / "again.json")
    with pytest.raises(ProvisioningError, match="reserved"):
        await provision_device(db, mosquitto.broker, "doorwatch-server", household_id=None,
                               bundle_path=tmp_path / "srv.json")
    assert not (tmp_path / "again.json").exists()


async def test_revoked_device_is_disconnected_and_refused_after_reload(
    db: Database, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = await provision_and_install(db, mosquitto, tmp_path, "door-a")
    password = stored_password(config)
    online = connect(mosquitto, "door-a", password)
    assert not online.refused
    assert await revoke_device(db, mosquitto.broker, "door-a")
    await wait_until_async(lambda: online.disconnects, "the revoked device disconnected")
    again = connect(mosquitto, "door-a", password)
    assert again.refused
    row = await db.fetch_one("SELECT revoked_at FROM devices WHERE device_id = 'door-a'")
    assert row is not None
    assert row["revoked_at"] is not None
    audit = await db.fetch_one("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")
    assert audit == {"action": "device.revoke"}
    online.close()
    again.close()


def tls_server_settings(tmp_path: Path, mosquitto: Mosquitto) -> ServerSettings:
    """The server connecting the way a remote instance would: TLS, verified against our CA."""
    return server_settings(tmp_path, mosquitto, mqtt={
        "host": "localhost", "port": mosquitto.tls_port, "tls": True,
        "ca_file": str(mosquitto.broker.ca_cert_file),
        "password": mosquitto.broker.server_password, "client_id": "doorwatch-server-test"})


async def test_rotation_loses_no_event(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async with serve(tls_server_settings(tmp_path, mosquitto)) as server:
        # Before its subscription is in place nothing is queued for the server.
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        db = server.db
        config = await provision_and_install(db, mosquitto, tmp_path, "door-r")
        old_password = stored_password(config)
        agent = scripted_agent(config)
        total = 300
        async with running_agent(agent):
            await wait_until_async(agent.link.connected.is_set, "the agent connected")
            producer = asyncio.create_task(produce_rotation_events(agent, total))
            # Rotate while events are flowing: some are stored, more are being produced.
            await wait_until_async(lambda: _stored(db, "door-r", 20), "20 events stored")
            result = await rotate_device(db, mosquitto.broker, "door-r", ack_timeout_s=20)
            await producer
            await wait_until_async(lambda: outbox_empty(agent), "the outbox drained", 30)
            last = await agent.outbox.last_seq("door-r")
            await wait_until_async(lambda: _stored(db, "door-r", last), f"{last} events stored", 30)
        rows = await db.fetch_all("SELECT seq, payload FROM events WHERE device_id = 'door-r'")
        audit = await db.fetch_one("SELECT detail FROM audit_log WHERE action = 'device.rotate'")
    assert result.reloaded
    assert result.reconnected
    seqs = sorted(int(r["seq"]) for r in rows)
    assert seqs == list(range(1, len(seqs) + 1)), "a gap in seq: an event was lost"
    payloads = [json.loads(r["payload"]) for r in rows]
    details = [p["detail"] for p in payloads if p.get("detail", "").startswith("rotation-")]
    assert sorted(details) == sorted(f"rotation-{i}" for i in range(total))
    acks = [p for p in payloads if p["type"] == "command_ack"]
    assert [(a["command"], a["ok"]) for a in acks] == [("rotate_credentials", True)]
    assert audit == {"detail": "reconnected"}
    store = CredentialStore(tmp_path / "data" / "door-r" / CREDENTIALS_FILE)
    assert store.pending is None
    assert store.current not in (None, old_password)
    assert connect(mosquitto, "door-r", old_password).refused
    fresh = connect(mosquitto, "door-r", store.current)
    assert not fresh.refused
    fresh.close()


async def test_rotation_of_an_offline_device_changes_nothing(
    db: Database, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = await provision_and_install(db, mosquitto, tmp_path, "door-a")
    with pytest.raises(ProvisioningError, match="did not acknowledge"):
        await rotate_device(db, mosquitto.broker, "door-a", ack_timeout_s=0.5)
    still = connect(mosquitto, "door-a", stored_password(config))
    assert not still.refused
    still.close()


async def test_payload_speaking_for_another_device_is_rejected_and_audited(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with serve(tls_server_settings(tmp_path, mosquitto)) as server:
        # Before its subscription is in place nothing is queued for the server.
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        db = server.db
        config_a = await provision_and_install(db, mosquitto, tmp_path, "door-a")
        await provision_and_install(db, mosquitto, tmp_path, "door-b")
        a = connect(mosquitto, "door-a", stored_password(config_a))
        spoof = Event(device_id="door-b", seq=1, time=utc_now(), kind=EventKind.EXIT, armed=True)
        a.publish(device_topic("door-a", Channel.EVENT), encode(spoof))
        await wait_until_async(lambda: _has_row(db, "SELECT id FROM audit_log WHERE "
                                                "action = 'security.device_id_mismatch'"),
                               "the device_id mismatch audited")
        audit = await db.fetch_all("SELECT actor, subject, detail FROM audit_log "
                                   "WHERE action = 'security.device_id_mismatch'")
        rejected = await db.fetch_all("SELECT device_id, reason FROM rejected_messages")
        events = await db.fetch_all("SELECT id FROM events")
        a.close()
    assert events == []
    assert len(audit) == 1
    assert audit[0]["actor"] == "device:door-a"
    assert audit[0]["subject"] == "device:door-b"
    assert rejected == [{"device_id": "door-a", "reason": audit[0]["detail"].split(": ", 1)[1]}]


async def _stored(db: Database, device_id: str, count: int) -> bool:
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM events WHERE device_id = ?", (device_id,))
    return row is not None and int(row["n"]) >= count


async def _has_row(db: Database, sql: str) -> bool:
    return await db.fetch_one(sql) is not None


async def test_two_rotations_of_one_device_at_once_the_second_is_refused(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Two `device rotate` of one device at once (two operators): they would kick each
    other's admin connection and race to set the broker's password. The second is refused
    at once, naming the device; the first completes and the device keeps working."""
    async with serve(tls_server_settings(tmp_path, mosquitto)) as server:
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        db = server.db
        config = await provision_and_install(db, mosquitto, tmp_path, "door-c")
        agent = scripted_agent(config)
        async with running_agent(agent):
            await wait_until_async(agent.link.connected.is_set, "the agent connected")
            first = asyncio.create_task(
                rotate_device(db, mosquitto.broker, "door-c", ack_timeout_s=20))
            await asyncio.sleep(0)  # the first has taken the device
            with pytest.raises(RotationInProgressError,
                               match="a rotation is already in progress for device door-c"):
                await rotate_device(db, mosquitto.broker, "door-c", ack_timeout_s=20)
            result = await first
            assert (result.reloaded, result.reconnected) == (True, True)
            # Once it is over, the device can be rotated again.
            again = await rotate_device(db, mosquitto.broker, "door-c", ack_timeout_s=20)
            assert again.reconnected
        rotations = await db.fetch_all("SELECT detail FROM audit_log "
                                       "WHERE action = 'device.rotate'")
    assert rotations == [{"detail": "reconnected"}] * 2
    fresh = connect(mosquitto, "door-c", stored_password(config))
    assert not fresh.refused
    fresh.close()


async def test_rotations_of_two_devices_at_once_take_turns(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The broker names every admin connection by its username: two rotations of different
    devices at once would take over each other's session (and miss their acknowledgements).
    They take turns instead, and both complete."""
    async with serve(tls_server_settings(tmp_path, mosquitto)) as server:
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 10)
        db = server.db
        agents = [scripted_agent(await provision_and_install(db, mosquitto, tmp_path, device))
                  for device in ("door-d", "door-e")]
        async with running_agent(agents[0]), running_agent(agents[1]):
            for agent in agents:
                await wait_until_async(agent.link.connected.is_set, "the agents connected")
            results = await asyncio.gather(
                rotate_device(db, mosquitto.broker, "door-d", ack_timeout_s=20),
                rotate_device(db, mosquitto.broker, "door-e", ack_timeout_s=20))
    assert [(r.device_id, r.reloaded, r.reconnected) for r in results] == [
        ("door-d", True, True), ("door-e", True, True)]

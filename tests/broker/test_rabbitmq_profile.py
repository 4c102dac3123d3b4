"""The RabbitMQ profile's broker side: init, TLS, per-device permissions, provision/revoke/rotate.

Against a real RabbitMQ node (one, to keep the suite short: accounts and
permissions are cluster-wide, the cluster's failover is
tests/faults/test_rabbitmq_cluster.py) started privately with the files
``RabbitBrokerDir.init`` wrote: its certificate, its definitions, its admin
account. The device side is the real agent with its installed bundle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.classify import ScriptedClassifier
from agent.credentials import CREDENTIALS_FILE, CredentialStore, install_bundle
from agent.service import Agent, running_agent
from broker.rabbitmq.broker_dir import RabbitBrokerDir, RabbitNode
from broker.rabbitmq.local import LocalRabbitCluster, rabbitmq_available
from broker.topics import Channel, device_topic
from firmware_config.device_config import DeviceConfig, load_device_config
from sensors.door import make_pin_factory
from server.config import load_server_settings
from server.db.base import Database
from server.db.connect import open_database
from server.domain.provisioning import (
    ProvisioningError,
    provision_device,
    revoke_device,
    rotate_device,
)
from server.service import serve
from tests.broker.helpers import connect, outbox_empty, produce_rotation_events
from tests.requirements import need
from tests.waiting import wait_until_async

pytestmark = [pytest.mark.slow]


@dataclass
class _Node:
    """What tests/broker/helpers.connect needs of a broker (the Mosquitto fixture's faces)."""

    broker: RabbitBrokerDir
    tls_port: int
    port: int


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Node, LocalRabbitCluster]]:
    """One private RabbitMQ node configured from a RabbitMQ broker directory."""
    need("rabbitmq", rabbitmq_available(),
         "RabbitMQ is not installed (Debian package rabbitmq-server)")
    root = tmp_path_factory.mktemp("rabbit-profile")
    cluster = LocalRabbitCluster(root / "node", size=1)
    node = cluster.nodes[0]
    broker = RabbitBrokerDir(root / "broker")
    broker.init([RabbitNode(name=node.name, host="127.0.0.1", mqtt_port=node.mqtt_tls_port,
                            amqp_port=node.amqp_port, mqtt_plain_port=node.mqtt_port)],
                ctl_env=cluster.env())
    state = broker.rabbit_state()
    cluster.tls_dir = broker.path
    cluster.admin_password = state.admin_password
    cluster.definitions = json.loads(broker.definitions_file.read_text())
    cluster.start()
    try:
        yield _Node(broker, node.mqtt_tls_port, node.mqtt_port), cluster
    finally:
        cluster.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """The server's database (SQLite), migrated."""
    database = await open_database(f"sqlite:///{tmp_path / 'admin.db'}")
    yield database
    await database.close()


async def _provision(db: Database, node: _Node, tmp_path: Path, device_id: str) -> DeviceConfig:
    bundle = tmp_path / f"{device_id}.bundle.json"
    assert await provision_device(db, node.broker, device_id, household_id=None,
                                  bundle_path=bundle)
    installed = install_bundle(bundle, tmp_path / "etc" / device_id,
                               data_dir=tmp_path / "data" / device_id)
    return load_device_config(installed.config_file)


def _password(config: DeviceConfig) -> str:
    assert config.mqtt.credentials_file is not None
    current = CredentialStore(config.mqtt.credentials_file).current
    assert current is not None
    return current


async def test_a_provisioned_device_is_held_to_its_own_topics_then_revoked(
    db: Database, rabbit: tuple[_Node, LocalRabbitCluster], tmp_path: Path
) -> None:
    node, _ = rabbit
    config = await _provision(db, node, tmp_path, "rb-door-a")
    await _provision(db, node, tmp_path, "rb-door-b")
    assert config.mqtt.tls
    assert config.mqtt.port == node.tls_port
    password = _password(config)
    admin = connect(node, "doorwatch-admin", node.broker.rabbit_state().admin_password,
                    client_id="doorwatch-admin-1", tls=False)
    assert not admin.refused
    assert admin.subscribe("doorwatch/v1/dev/#") == [1]
    device = await asyncio.to_thread(connect, node, "rb-door-a", password,
                                     ca_file=config.mqtt.ca_file)
    assert not device.refused
    own = device_topic("rb-door-a", Channel.EVENT)
    device.publish(own, b'{"own": true}')
    await wait_until_async(lambda: own in admin.topics(), "the device's own event at the admin")
    # Another device's commands: refused (RabbitMQ 3.10 closes the connection rather
    # than answer SUBACK 0x80; either is a refusal).
    device.paho.subscribe("doorwatch/v1/cmd/rb-door-b/#", qos=1)
    await wait_until_async(lambda: device.disconnects or device.subacks == [[128]],
                           "the foreign subscription refused",
                           detail=lambda: f"subacks {device.subacks}")
    device.close()
    # Another device's topic: RabbitMQ closes the connection; nothing arrives.
    device = await asyncio.to_thread(connect, node, "rb-door-a", password,
                                     ca_file=config.mqtt.ca_file)
    assert not device.refused
    device.paho.publish(device_topic("rb-door-b", Channel.EVENT), b'{"spoof": true}', qos=1)
    await wait_until_async(lambda: device.disconnects, "the spoofing device disconnected")
    # A window, not a wait: the spoofed event must not arrive at the admin meanwhile.
    await asyncio.sleep(0.5)
    assert device_topic("rb-door-b", Channel.EVENT) not in admin.topics()
    wrong = await asyncio.to_thread(connect, node, "rb-door-a", "not-the-password",
                                    ca_file=config.mqtt.ca_file)
    assert wrong.refused
    online = await asyncio.to_thread(connect, node, "rb-door-a", password,
                                     ca_file=config.mqtt.ca_file)
    assert not online.refused
    with pytest.raises(ProvisioningError, match="already provisioned"):
        await provision_device(db, node.broker, "rb-door-a", household_id=None,
                               bundle_path=tmp_path / "again.json")
    assert await revoke_device(db, node.broker, "rb-door-a")
    await wait_until_async(lambda: online.disconnects, "the revoked device disconnected")
    again = await asyncio.to_thread(connect, node, "rb-door-a", password,
                                    ca_file=config.mqtt.ca_file)
    assert again.refused
    assert "rb-door-a" not in node.broker.users()
    for client in (admin, device, wrong, online, again):
        client.close()


async def test_rotation_through_the_cluster_loses_no_event(
    rabbit: tuple[_Node, LocalRabbitCluster], tmp_path: Path
) -> None:
    node, cluster = rabbit
    settings = load_server_settings(
        None, database_url=f"sqlite:///{tmp_path / 'server.db'}",
        data_dir=str(tmp_path / "server-data"), instance="test", broker="rabbitmq",
        amqp={"nodes": cluster.amqp_urls, "password": node.broker.rabbit_state().server_password})
    async with serve(settings) as server:
        assert await asyncio.to_thread(server.mqtt.subscribed.wait, 30)
        db = server.db
        config = await _provision(db, node, tmp_path, "rb-door-r")
        old_password = _password(config)
        config = config.model_copy(update={"pin_factory": "mock", "heartbeat_interval_s": 0.5})
        agent = Agent(config, pin_factory=make_pin_factory("mock"),
                      classifier=ScriptedClassifier())
        total = 200

        async def count_stored(count: int) -> bool:
            row = await db.fetch_one("SELECT COUNT(*) AS n FROM events WHERE device_id = ?",
                                     ("rb-door-r",))
            return row is not None and int(row["n"]) >= count

        async def stored() -> bool:
            return await count_stored(await agent.outbox.last_seq("rb-door-r"))

        async with running_agent(agent):
            await wait_until_async(agent.link.connected.is_set, "the agent connected", 30)
            producer = asyncio.create_task(produce_rotation_events(agent, total))
            # Rotate while events are flowing: some are stored, more are being produced.
            await wait_until_async(lambda: count_stored(20), "20 events stored", 30)
            result = await rotate_device(db, node.broker, "rb-door-r", ack_timeout_s=30)
            await producer
            await wait_until_async(lambda: outbox_empty(agent), "the outbox drained", 30)
            await wait_until_async(stored, "every produced event stored", 30)
        rows = await db.fetch_all("SELECT seq, payload FROM events WHERE device_id = 'rb-door-r'")
    assert result.reconnected
    seqs = sorted(int(r["seq"]) for r in rows)
    assert seqs == list(range(1, len(seqs) + 1)), "a gap in seq: an event was lost"
    details = [json.loads(r["payload"]).get("detail", "") for r in rows]
    assert sorted(d for d in details if d.startswith("rotation-")) == sorted(
        f"rotation-{i}" for i in range(total))
    store = CredentialStore(tmp_path / "data" / "rb-door-r" / CREDENTIALS_FILE)
    assert store.current not in (None, old_password)
    assert (await asyncio.to_thread(connect, node, "rb-door-r", old_password,
                                    ca_file=node.broker.ca_cert_file)).refused



def test_init_rabbitmq_writes_owner_only_files_for_every_node(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from doorwatch.cli import app

    out = CliRunner().invoke(app, ["broker", "init-rabbitmq", str(tmp_path / "b"),
                                   "--node", "rabbit@b1", "--node", "rabbit@b2"])
    assert out.exit_code == 0, out.output
    broker = RabbitBrokerDir(tmp_path / "b")
    broker.check()  # owner-only secrets, certificate matches its key
    state = broker.rabbit_state()
    assert [n.host for n in state.nodes] == ["b1", "b2"]
    assert broker.device_brokers() == ["b2:8883"]
    conf = broker.node_config_file(state.nodes[1]).read_text()
    assert "mqtt.listeners.ssl.default = b2:8883" in conf
    assert "mqtt.durable_queue_type = quorum" in conf
    defs = json.loads(broker.definitions_file.read_text())
    assert [q["name"] for q in defs["queues"]] == ["doorwatch.ingest"]
    again = CliRunner().invoke(app, ["broker", "init-rabbitmq", str(tmp_path / "b"),
                                     "--node", "rabbit@b1"])
    assert again.exit_code == 2
    bad = CliRunner().invoke(app, ["broker", "init-rabbitmq", str(tmp_path / "c"),
                                   "--node", "b1"])
    assert bad.exit_code == 2

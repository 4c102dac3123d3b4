"""A three-node RabbitMQ cluster: a broker node and a server instance SIGKILLed mid-stream.

50 simulated devices (the agent's own outbox and link, each knowing every node)
publish 10,000 events over MQTT; two server instances consume the replicated
ingest queue into one PostgreSQL. The node leading the queue is SIGKILLed and
later restarted, and one server instance is SIGKILLed for good: every event
must be stored exactly once, with no seq gap, and breaches published after
the node died must still reach the grid worker's webhook.

The cluster runs on loopback with its own node names, ports, data folders,
Erlang cookie and epmd port (broker/rabbitmq/local.py); the machine's own
RabbitMQ is not touched.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from broker.rabbitmq.definitions import INGEST_QUEUE, definitions
from broker.rabbitmq.local import LocalRabbitCluster, rabbitmq_available
from server.admin import register_device
from server.db.connect import open_database
from tests.conftest import Receiver, doorwatch_process, wait_for_log
from tests.e2e.helpers import seed_household
from tests.requirements import need
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.faults, pytest.mark.slow]

DEVICES = 50
PER_DEVICE = 200
WATCHED = 3  # devices whose households are in quarantine: their exits are breaches
# Events/s of the whole fleet: production spans ~65 s, so devices keep publishing (and
# breaching) through the node's death, the failover and the server instance's death.
RATE = 150


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRabbitCluster,
                                                                        dict[str, str], str]]:
    """A 3-node cluster with the server account and 50 device accounts."""
    need("rabbitmq", rabbitmq_available(),
         "RabbitMQ is not installed (Debian package rabbitmq-server)")
    devices = {f"node-dev-{i:03d}": secrets.token_urlsafe(12) for i in range(DEVICES)}
    server_password = secrets.token_urlsafe(12)
    root = tmp_path_factory.mktemp("rabbit")
    cluster = LocalRabbitCluster(root, definitions=definitions(
        server_password=server_password, admin_password=secrets.token_urlsafe(12),
        devices=devices))
    cluster.start()
    try:
        yield cluster, devices, server_password
    finally:
        cluster.stop()


def _server_config(tmp_path: Path, cluster: LocalRabbitCluster, password: str, db_url: str,
                   name: str, first: int) -> Path:
    nodes = cluster.amqp_urls[first:] + cluster.amqp_urls[:first]
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps({
        "database_url": db_url, "data_dir": str(tmp_path / name), "instance": name,
        "broker": "rabbitmq",
        "amqp": {"nodes": nodes, "password": password, "client_id": f"doorwatch-{name}"},
        # Every exit its own incident, so breaches keep coming through the whole run.
        "rules": {"fold_window_s": 0},
        "notify": {"retry_delays_s": [0.5, 1.0, 2.0], "poll_interval_s": 0.1},
    }))
    return path


def _start(tmp_path: Path, config: Path, name: str) -> subprocess.Popen[bytes]:
    log = tmp_path / f"{name}.log"
    process = doorwatch_process("server", "run", "-c", str(config), log=log)
    assert wait_for_log(log, '"msg": "consuming"', timeout=60), log.read_text()
    return process


async def _query(db_url: str, sql: str) -> list[dict[str, object]]:
    db = await open_database(db_url)
    try:
        return [dict(row) for row in await db.fetch_all(sql)]
    finally:
        await db.close()


def _counts(db_url: str) -> tuple[int, int, int]:
    row = asyncio.run(_query(
        db_url, "SELECT COUNT(*) AS n, COUNT(DISTINCT device_id || ':' || seq) AS d, "
        "(SELECT COUNT(*) FROM seq_gaps) AS g FROM events"))[0]
    return int(str(row["n"])), int(str(row["d"])), int(str(row["g"]))


def _wait_stored(db_url: str, at_least: int, timeout: float) -> int:
    """Wait until ``at_least`` events are stored; return how many are."""
    wait_until(lambda: _counts(db_url)[0] >= at_least, f"{at_least} events stored", timeout,
               every=0.5, detail=lambda: f"(stored, distinct, gaps) = {_counts(db_url)}")
    return _counts(db_url)[0]


def _register(db_url: str, devices: list[str], apprise_url: str) -> None:
    async def run() -> None:
        db = await open_database(db_url)
        try:
            for index, device_id in enumerate(devices):
                if index < WATCHED:
                    await seed_household(db, device_id, apprise_url)
                else:
                    await register_device(db, device_id, household_id=None)
        finally:
            await db.close()

    asyncio.run(run())


def test_node_and_server_killed_every_event_stored_once(
    tmp_path: Path, cluster: tuple[LocalRabbitCluster, dict[str, str], str],
    postgres_url: str, receiver: Receiver,
) -> None:
    nodes, devices, server_password = cluster
    _register(postgres_url, sorted(devices), receiver.apprise_url)
    configs = {name: _server_config(tmp_path, nodes, server_password, postgres_url, name, i)
               for i, name in enumerate(("a", "b"))}
    servers = {name: _start(tmp_path, config, name) for name, config in configs.items()}
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps(devices))
    first, *others = nodes.mqtt_addresses
    total = DEVICES * PER_DEVICE
    sim = doorwatch_process(
        "sim", "--credentials", str(creds), "--host", first[0], "--port", str(first[1]),
        *[arg for host, port in others for arg in ("--broker", f"{host}:{port}")],
        "--data-dir", str(tmp_path / "sim"), "--events", str(PER_DEVICE), "--rate", str(RATE),
        "--drain-timeout", "120", log=tmp_path / "sim.log")
    try:
        assert _wait_stored(postgres_url, total // 5, 90) >= total // 5, \
            (tmp_path / "sim.log").read_text()[-3000:]
        # The worst node to lose: the one leading the quorum queue.
        victim = nodes.queue_leader(INGEST_QUEUE)
        victim.kill()
        killed_at = time.time()
        at_kill = _counts(postgres_url)[0]
        assert _wait_stored(postgres_url, at_kill + 1000, 60) >= at_kill + 1000
        servers["a"].kill()  # SIGKILL: whatever it held unacknowledged goes to "b"
        servers["a"].wait()
        at_server_kill = _counts(postgres_url)[0]
        assert _wait_stored(postgres_url, at_server_kill + 500, 60) >= at_server_kill + 500
        nodes.start_node(victim)
        assert sim.wait(timeout=240) == 0, (tmp_path / "sim.log").read_text()[-3000:]
        _wait_stored(postgres_url, total, 120)
        # Breaches published (device time: an incident opens at its event's time) after
        # the node died reached the worker's webhook.
        after = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(killed_at + 1))
        late = asyncio.run(_query(
            postgres_url, "SELECT COUNT(*) AS n FROM notifications n JOIN incidents i "  # noqa: S608 - a timestamp we formatted
            "ON i.id = n.incident_id WHERE n.delivered_at IS NOT NULL "
            f"AND i.opened_at > '{after}'"))
    finally:
        for process in servers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in servers.values():
            process.wait(timeout=30)
        sim.kill()
    stored, distinct, gaps = _counts(postgres_url)
    assert (stored, distinct, gaps) == (total, total, 0), asyncio.run(_query(
        postgres_url, "SELECT reason, COUNT(*) AS n FROM rejected_messages GROUP BY reason"))
    assert int(str(late[0]["n"])) > 0, "no breach after the node kill was notified"
    assert receiver.received, "no notification reached the webhook"
    assert '"msg": "server stopped"' in (tmp_path / "b.log").read_text()

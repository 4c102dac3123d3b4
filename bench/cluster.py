"""The RabbitMQ profile: breach latency across node kills, and durable ingest through the cluster.

One three-node cluster on loopback (broker/rabbitmq/local.py), two server
instances on one PostgreSQL (the profile's deployment), a notification receiver.

* **failover**: a device (the agent's own outbox and link, paho thread, every
  node's address) is connected to some node; that node is SIGKILLed and at the
  same moment the device records an ``exit`` (the physical event: the latency
  starts there). Measured: kill -> the worker's webhook receives the breach.
  The node is restarted and the next round kills the device's new node.
* **ingest**: a backlog of events is put into the quorum queue while both
  servers are stopped (published over AMQP to amq.topic with the devices'
  routing keys, with publisher confirms: the queue is the same one the MQTT
  plugin fills), then both servers drain it into PostgreSQL. Rate = first to
  last ``received_at``; CPU per event of the servers and of all three nodes.

Run: ``python -m bench.cluster`` (or ``make bench``, part "cluster"); writes
bench/results/cluster.json.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiormq
import psutil
import tomli_w
from pamqp.commands import Basic
from pydantic import SecretStr

from agent.link import AgentLink
from agent.outbox import Outbox
from bench.harness import REPO, database, event_lines, stop, write_result
from broker.messages import Event, EventKind, encode, utc_now
from broker.rabbitmq.definitions import EXCHANGE, definitions, routing_key
from broker.rabbitmq.local import LocalNode, LocalRabbitCluster
from broker.topics import Channel, device_topic
from firmware_config.device_config import MqttLinkSettings
from ground.timeutil import from_ts
from server.admin import add_household, add_worker, register_device
from server.db.connect import open_database

__all__ = ["run_cluster"]

WATCHED = "bench-watched"
LOADER = "bench-loader"  # same password as the server account (its hash is copied)


class _Webhook:
    """Apprise json:// posts land here; arrival times kept."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._cond = threading.Condition()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with webhook._cond:
                    webhook.arrivals.append(time.time())
                    webhook._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/notify"

    def wait(self, count: int, timeout: float) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: len(self.arrivals) >= count, timeout)
            return self.arrivals[count - 1] if len(self.arrivals) >= count else None


def _cpu(nodes: list[LocalNode]) -> float:
    total = 0.0
    for node in nodes:
        if node.process is None or not node.alive():
            continue
        try:
            root = psutil.Process(node.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


async def _ingested(db_url: str) -> tuple[int, float]:
    """Backlog events stored so far and the span of their arrival (the failover phase's
    breaches, stored minutes earlier, left out)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        count, first, last = await conn.fetchrow(
            "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM events "
            "WHERE device_id != $1", WATCHED)
    finally:
        await conn.close()
    if not count:
        return 0, 0.0
    return int(count), (from_ts(last) - from_ts(first)).total_seconds()


async def _seed(db_url: str, url: str, devices: list[str]) -> None:
    db = await open_database(db_url)
    try:
        worker = await add_worker(db, "bench worker", apprise_urls=[url])
        household = await add_household(db, "bench household", "bench address",
                                        worker_id=worker)
        await register_device(db, WATCHED, household_id=household)
        for device_id in devices:
            await register_device(db, device_id, household_id=None)
    finally:
        await db.close()


def _server_configs(root: Path, cluster: LocalRabbitCluster, password: str,
                    db_url: str) -> list[tuple[Path, Path]]:
    out = []
    for n in range(2):
        folder = root / f"server-{n}"
        folder.mkdir()
        nodes = cluster.amqp_urls[n:] + cluster.amqp_urls[:n]
        config = folder / "server.toml"
        config.write_text(tomli_w.dumps({
            "database_url": db_url, "data_dir": str(folder), "instance": f"bench-{n}",
            "broker": "rabbitmq",
            "amqp": {"nodes": nodes, "password": password, "client_id": f"bench-{n}"},
            "rules": {"fold_window_s": 0},  # every exit its own incident and notification
            "notify": {"poll_interval_s": 0.05},
        }))
        out.append((config, folder / "server.log"))
    return out


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``doorwatch server run`` on the RabbitMQ profile, once it consumes the queue."""
    handle = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "doorwatch", "server", "run", "-c",
                             str(config)], stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if '"msg": "consuming"' in log.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start consuming in time")


async def _failover(cluster: LocalRabbitCluster, password: str, webhook: _Webhook,
                    root: Path, rounds: int) -> list[float]:
    outbox = await Outbox.connect(root / "device-outbox.db", durable=False)
    first, *others = cluster.mqtt_addresses
    settings = MqttLinkSettings(host=first[0], port=first[1], password=SecretStr(password),
                                keepalive_s=10, brokers=[f"{h}:{p}" for h, p in others])
    link = AgentLink(WATCHED, settings, outbox)
    loop = asyncio.get_running_loop()
    link.start(loop)
    pump = loop.create_task(link.run())
    topic = device_topic(WATCHED, Channel.EVENT)
    latencies: list[float] = []
    try:
        await asyncio.to_thread(link.connected.wait, 30)
        # The device's session queue (a quorum queue) needs its members up before its
        # node may die: killed within a second of the session's creation, RabbitMQ 3.10
        # left it leaderless (see docs/scale-out.md, "Limits"). A device connects once
        # and stays; this is the steady state being measured.
        await asyncio.sleep(5)
        for _ in range(rounds):
            port = int(link.where.rsplit(":", 1)[1])
            victim = next(n for n in cluster.nodes if n.mqtt_port == port)
            seen = len(webhook.arrivals)
            victim.kill()
            killed_at = time.time()
            await outbox.append(WATCHED, topic, lambda seq: encode(Event(
                device_id=WATCHED, seq=seq, time=utc_now(), kind=EventKind.EXIT, armed=True)))
            link.wake()
            arrived = await asyncio.to_thread(webhook.wait, seen + 1, 60)
            latencies.append(round(arrived - killed_at, 2) if arrived else float("inf"))
            await asyncio.to_thread(cluster.start_node, victim)
            await asyncio.sleep(3)  # let the restarted node catch up before the next kill
    finally:
        pump.cancel()
        link.stop()
        await outbox.close()
    return latencies


async def _backlog(cluster: LocalRabbitCluster, password: str, lines: dict[str, bytes]) -> None:
    """Put events into the quorum queue (AMQP, confirmed), as the MQTT plugin would."""
    url = f"amqp://{LOADER}:{password}@{cluster.amqp_urls[0]}/"
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for device_id, text in lines.items():
            key = routing_key(device_topic(device_id, Channel.EVENT))
            pending = []
            for payload in text.splitlines():
                pending.append(channel.basic_publish(
                    payload, exchange=EXCHANGE, routing_key=key,
                    properties=Basic.Properties(delivery_mode=2)))
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
    finally:
        await connection.close()


def run_cluster(rounds: int = 5, events: int = 30_000, devices: int = 20) -> dict[str, Any]:
    """Both measurements on one cluster; see the module docstring."""
    ids = [f"bench-{i:04d}" for i in range(devices)]
    watched_password = secrets.token_urlsafe(12)
    server_password = secrets.token_urlsafe(12)
    per_device = events // devices
    total = per_device * devices
    webhook = _Webhook()
    with tempfile.TemporaryDirectory(prefix="doorwatch-bench-cluster-") as tmp:
        root = Path(tmp)
        defs = definitions(server_password=server_password,
                           admin_password=secrets.token_urlsafe(12),
                           devices={WATCHED: watched_password})
        # A loader account for the backlog only: the server's own may write commands only.
        defs["users"].append({**defs["users"][0], "name": LOADER})
        defs["permissions"].append({"user": LOADER, "vhost": "/", "configure": "",
                                    "write": "^amq\\.topic$", "read": ""})
        cluster = LocalRabbitCluster(root / "rabbit", definitions=defs)
        start_s = cluster.start()
        try:
            with database("postgres", root) as db_url:
                asyncio.run(_seed(db_url, webhook.url, ids))
                configs = _server_configs(root, cluster, server_password, db_url)
                servers = [_start(config, log) for config, log in configs]
                try:
                    latencies = asyncio.run(_failover(cluster, watched_password, webhook,
                                                      root, rounds))
                    print(f"breach after kill, s: {latencies}", flush=True)
                finally:
                    for server in servers:
                        stop(server)
                lines = {d: event_lines(d, 1, per_device) for d in ids}
                asyncio.run(_backlog(cluster, server_password, lines))
                cpu_nodes = _cpu(cluster.nodes)
                servers = [_start(config, log) for config, log in configs]
                cpu_servers = sum(psutil.Process(s.pid).cpu_times().user
                                  + psutil.Process(s.pid).cpu_times().system for s in servers)
                deadline = time.monotonic() + 600
                stored, span = 0, 0.0
                while time.monotonic() < deadline:
                    stored, span = asyncio.run(_ingested(db_url))
                    if stored >= total:
                        break
                    time.sleep(0.3)
                cpu_nodes = _cpu(cluster.nodes) - cpu_nodes
                cpu_servers = sum(psutil.Process(s.pid).cpu_times().user
                                  + psutil.Process(s.pid).cpu_times().system
                                  for s in servers) - cpu_servers
                for server in servers:
                    stop(server)
        finally:
            cluster.stop()
    finite = [x for x in latencies if x != float("inf")]
    return {
        "cluster_start_s": round(start_s, 1),
        "failover_rounds": rounds,
        "breach_after_kill_s": latencies,
        "breach_after_kill_p50_s": round(statistics.median(finite), 2) if finite else None,
        "breach_after_kill_max_s": max(latencies) if latencies else None,
        "breaches_lost": len(latencies) - len(finite),
        "ingest_events": total, "ingest_stored": stored,
        "ingest_server_instances": 2,
        "ingest_events_per_s": round(total / span) if span else None,
        "ingest_server_cpu_us_per_event": round(cpu_servers / total * 1e6, 1),
        "ingest_broker_cpu_us_per_event": round(cpu_nodes / total * 1e6, 1),
    }


if __name__ == "__main__":
    result = run_cluster()
    write_result("cluster", result)
    print(json.dumps(result, indent=2))

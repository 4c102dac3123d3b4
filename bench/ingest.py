"""Durable ingest: events/s from Mosquitto into the database, against a bare subscriber.

Both consumers drain the same backlog: their persistent sessions are created
first, then N events are published once (by ``mosquitto_pub``, C, several
connections) while both are offline, so the broker queues the same messages
for each. The bare subscriber (``mosquitto_sub``, QoS 1, no storage) is then
timed until it has received N; the server is started and timed from its first
stored event to its last (``received_at`` in the database), so neither the
publisher nor process start-up is in the figure: the consumer is the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    Broker,
    database,
    event_lines,
    mosquitto,
    publish_lines,
    server_config,
    start_server,
    stop,
)
from ground.timeutil import from_ts
from server.admin import register_device
from server.db.connect import open_database

__all__ = ["register_devices", "run_ingest", "stored_events"]

TOPIC = "doorwatch/v1/dev/+/event"


def _bare_session(broker: Broker, account: tuple[str, str]) -> None:
    user, password = account  # its own account: the client id is the username
    subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i",
         user, "-u", user, "-P", password, "-t", TOPIC, "-E"],
        check=True, timeout=30)


def _bare_drain(broker: Broker, account: tuple[str, str], count: int) -> float:
    user, password = account
    started = time.perf_counter()
    subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i",
         user, "-u", user, "-P", password, "-t", TOPIC,
         "-C", str(count)],
        check=True, timeout=600, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


async def register_devices(db_url: str, devices: list[str]) -> None:
    """Register ``devices`` (no household) so the server stores their events."""
    db = await open_database(db_url)
    try:
        for device_id in devices:
            await register_device(db, device_id, household_id=None)
    finally:
        await db.close()


_COUNT = "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM events"


async def stored_events(db_url: str) -> tuple[int, float]:
    """Events stored so far and the span of their arrival, read without disturbing the writer.

    Not through ``open_database``: that runs the migration check in a write
    transaction, which would take SQLite's lock from the server twice a second.
    """
    if db_url.startswith("sqlite:///"):
        path = db_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            count, first, last = conn.execute(_COUNT).fetchone()
    else:
        import asyncpg

        conn = await asyncpg.connect(db_url)
        try:
            count, first, last = await conn.fetchrow(_COUNT)
        finally:
            await conn.close()
    if not count:
        return 0, 0.0
    return int(count), (from_ts(last) - from_ts(first)).total_seconds()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _configs(root: Path, broker: Broker, db_url: str, protocol: int,
             instances: int) -> list[tuple[Path, Path]]:
    """(config, log) of each server instance; several share the subscription."""
    if instances == 1:
        return [(server_config(root, broker, db_url, mqtt={"protocol": protocol}),
                 root / "server.log")]
    out = []
    for n in range(instances):
        folder = root / f"server-{n}"
        folder.mkdir()
        user, password = broker.account(f"bench-{n}")  # a session of its own
        config = server_config(folder, broker, db_url, instance=f"bench-{n}", mqtt={
            "protocol": protocol, "username": user, "password": password,
            "shared_group": "bench"})
        out.append((config, folder / "server.log"))
    return out


def run_ingest(kind: str, events: int = 100_000, devices: int = 20,
               protocol: int = 5, instances: int = 1) -> dict[str, Any]:
    """Measure durable ingest into ``kind`` ('sqlite' or 'postgres') and the bare rate.

    With ``instances`` > 1, that many servers share the subscription
    (``$share/...``) and the one database; the rate is the database's.
    """
    ids = [f"bench-{i:04d}" for i in range(devices)]
    per_device = events // devices
    total = per_device * devices
    with tempfile.TemporaryDirectory(prefix="doorwatch-bench-") as tmp:
        root = Path(tmp)
        with mosquitto(root, ids) as broker, database(kind, root) as db_url:
            asyncio.run(register_devices(db_url, ids))
            configs = _configs(root, broker, db_url, protocol, instances)
            for config, log in configs:
                stop(start_server(config, log))  # creates the server's persistent session
            bare = broker.account("bare")
            _bare_session(broker, bare)
            publish_s = publish_lines(broker, {d: event_lines(d, 1, per_device) for d in ids})
            broker_cpu = _cpu_seconds(broker.process.pid)
            bare_s = _bare_drain(broker, bare, total)
            broker_cpu = _cpu_seconds(broker.process.pid) - broker_cpu
            servers = [start_server(config, log) for config, log in configs]
            cpu_start = sum(_cpu_seconds(server.pid) for server in servers)
            broker_cpu_server = _cpu_seconds(broker.process.pid)
            deadline = time.monotonic() + 900
            stored, span = 0, 0.0
            while time.monotonic() < deadline:
                stored, span = asyncio.run(stored_events(db_url))
                if stored >= total:
                    break
                time.sleep(0.2)
            # CPU per event does not depend on what else the machine is doing (a rate
            # does); it includes start-up work that overlaps the drain (Apprise's plugins).
            server_cpu_s = sum(_cpu_seconds(server.pid) for server in servers) - cpu_start
            broker_cpu_server = _cpu_seconds(broker.process.pid) - broker_cpu_server
            for server in servers:
                stop(server)
    bare_rate = total / bare_s
    server_rate = total / span if span else 0.0
    return {
        "backend": kind, "mqtt_protocol": protocol, "events": total, "devices": devices,
        "server_instances": instances,
        "stored": stored,
        "publish_s": round(publish_s, 2),
        "bare_subscriber_events_per_s": round(bare_rate),
        "server_events_per_s": round(server_rate),
        "ratio_to_bare": round(server_rate / bare_rate, 3) if bare_rate else None,
        "server_cpu_us_per_event": round(server_cpu_s / total * 1e6, 1) if total else None,
        # Mosquitto's own CPU per message while it fed each consumer: what the broker
        # takes of the two cores at a given rate, leaving the rest to the consumer.
        "broker_cpu_us_per_message_bare": round(broker_cpu / total * 1e6, 2) if total else None,
        "broker_cpu_us_per_message_server": (round(broker_cpu_server / total * 1e6, 2)
                                             if total else None),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run_ingest(sys.argv[1] if len(sys.argv) > 1 else "sqlite",
                                int(sys.argv[2]) if len(sys.argv) > 2 else 50_000,
                                protocol=int(sys.argv[3]) if len(sys.argv) > 3 else 5,
                                instances=int(sys.argv[4]) if len(sys.argv) > 4 else 1),
                     indent=2))

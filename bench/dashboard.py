"""Dashboard reads during a backlog drain: how long a read waits while ingest runs.

The server is started on a 100,000-event backlog (queued in its persistent
session while it was down) with HTTP on; while it drains, ``/healthz`` is
requested back to back. ``/healthz`` makes one read through
``Database.fetch_one`` (the path every dashboard page and API read takes), so
its latency is what a supervisor's page waits on top of its own query: on
SQLite, reads go to their own connection (WAL) instead of queueing behind the
ingest transactions on the writer's thread. p50/p99 over the requests answered
during the drain; the count is itself a figure (more answered is better).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import harness
from bench.ingest import register_devices, stored_events

__all__ = ["run_dashboard"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(sorted_s: list[float], share: float) -> float:
    return round(sorted_s[min(len(sorted_s) - 1, int(share * len(sorted_s)))] * 1000, 1)


def run_dashboard(kind: str = "sqlite", events: int = 100_000, devices: int = 20) -> dict[str, Any]:
    """Read latency (ms) of ``/healthz`` while the server drains ``events`` into ``kind``."""
    ids = [f"bench-{i:04d}" for i in range(devices)]
    per_device = events // devices
    total = per_device * devices
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="doorwatch-bench-") as tmp:
        root = Path(tmp)
        with harness.mosquitto(root, ids) as broker, harness.database(kind, root) as db_url:
            asyncio.run(register_devices(db_url, ids))
            port = _free_port()
            config = harness.server_config(root, broker, db_url,
                                           http={"enabled": True, "port": port})
            log = root / "server.log"
            # The first start creates the server's persistent session; the backlog queues there.
            harness.stop(harness.start_server(config, log))
            harness.publish_lines(broker, {d: harness.event_lines(d, 1, per_device) for d in ids})
            server = harness.start_server(config, log)
            url = f"http://127.0.0.1:{port}/healthz"
            deadline = time.monotonic() + 900
            checked = 0.0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                with urllib.request.urlopen(url, timeout=60) as answer:
                    answer.read()
                latencies.append(time.perf_counter() - started)
                if time.monotonic() - checked > 0.5:
                    checked = time.monotonic()
                    if asyncio.run(stored_events(db_url))[0] >= total:
                        break
                time.sleep(0.02)
            harness.stop(server)
    latencies.sort()
    return {"backend": kind, "events": total, "requests_during_drain": len(latencies),
            "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
            "max_ms": round(latencies[-1] * 1000, 1)}

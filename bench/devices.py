"""How many connected devices with heartbeats this machine holds with no loss.

For each fleet size: provision the devices (broker password file + server
registry), start Mosquitto and the server, then one fleet-simulator process
keeps every device connected, each sending a QoS 1 heartbeat every interval.
A size passes when, at the end, every device is connected, every device's
last heartbeat reached the server's database within the last two intervals,
and nothing was rejected.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.harness import REPO, database, mosquitto, server_config, start_server, stop
from doorwatch.timeutil import from_ts, utcnow
from server.admin import register_device
from server.db import open_database

__all__ = ["run_devices"]


async def _register(db_url: str, devices: list[str]) -> None:
    db = await open_database(db_url)
    try:
        for device_id in devices:
            await register_device(db, device_id, household_id=None)
    finally:
        await db.close()


async def _fresh(db_url: str, within_s: float) -> tuple[int, int]:
    db = await open_database(db_url)
    try:
        rows = await db.fetch_all("SELECT last_heartbeat_at FROM devices")
        rejected = await db.fetch_one("SELECT COUNT(*) AS n FROM rejected_messages")
    finally:
        await db.close()
    limit = utcnow() - timedelta(seconds=within_s)
    fresh = sum(1 for r in rows
                if r["last_heartbeat_at"] and from_ts(r["last_heartbeat_at"]) >= limit)
    return fresh, int(rejected["n"]) if rejected else 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def run_size(size: int, interval_s: float = 10.0, duration_s: float = 45.0) -> dict[str, Any]:
    """Hold ``size`` devices for ``duration_s`` seconds; report whether nothing was lost."""
    ids = [f"fleet-{i:05d}" for i in range(size)]
    with tempfile.TemporaryDirectory(prefix="doorwatch-devices-") as tmp:
        root = Path(tmp)
        with mosquitto(root, ids) as broker, database("sqlite", root) as db_url:
            asyncio.run(_register(db_url, ids))
            server = start_server(server_config(root, broker, db_url), root / "server.log")
            creds = root / "creds.json"
            creds.write_text(json.dumps(broker.passwords))
            started = time.monotonic()
            cpu_before = {name: _cpu_seconds(p.pid) for name, p in
                          (("broker", broker.process), ("server", server))}
            sim = subprocess.run(
                [sys.executable, "-m", "doorwatch", "sim", "--credentials", str(creds),
                 "--port", str(broker.port), "--data-dir", str(root / "sim"), "--events", "0",
                 "--heartbeat-interval", str(interval_s), "--duration", str(duration_s)],
                capture_output=True, text=True, cwd=REPO, timeout=duration_s + 600, check=False)
            elapsed = time.monotonic() - started
            cpu = {name: round((_cpu_seconds(p.pid) - cpu_before[name]) / elapsed * 100, 1)
                   for name, p in (("broker", broker.process), ("server", server))}
            time.sleep(1.0)
            fresh, rejected = asyncio.run(_fresh(db_url, 2 * interval_s + 2))
            stop(server)
    result = json.loads(sim.stdout.strip().splitlines()[-1]) if sim.stdout.strip() else {}
    ok = (sim.returncode == 0 and result.get("connected_at_end") == size and fresh == size
          and rejected == 0)
    return {"devices": size, "heartbeat_interval_s": interval_s, "duration_s": duration_s,
            "connected_at_end": result.get("connected_at_end"),
            "seconds_to_connect_all": result.get("connect_s"),
            "heartbeats_sent": result.get("heartbeats_sent"), "fresh_in_db": fresh,
            "rejected": rejected, "cpu_percent": cpu, "no_loss": ok,
            "sim_error": sim.stderr[-500:] if sim.returncode else ""}


def run_devices(sizes: tuple[int, ...] = (1000, 2500, 5000)) -> dict[str, Any]:
    """Try each fleet size; the largest that holds with no loss is the figure."""
    runs = []
    for size in sizes:
        run = run_size(size)
        runs.append(run)
        print(json.dumps(run), flush=True)
        if not run["no_loss"]:
            break
    held = max((r["devices"] for r in runs if r["no_loss"]), default=0)
    return {"largest_fleet_with_no_loss": held, "runs": runs}


if __name__ == "__main__":
    sizes = tuple(int(s) for s in sys.argv[1:]) or (1000, 2500, 5000)
    print(json.dumps(run_devices(sizes), indent=2))

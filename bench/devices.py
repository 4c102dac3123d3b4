"""How many connected devices with heartbeats this machine holds with no loss.

For each fleet size: provision the devices (broker password file + server
registry), start Mosquitto and the server, then one fleet-simulator process
keeps every device connected, each sending a QoS 1 heartbeat every interval.
A size passes when, after the measured span (all simulators still running),
every device's last heartbeat reached the server's database within the last
two intervals, every device was still connected when its simulator ended, and
nothing was rejected.
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
from bench.ingest import register_devices
from ground.timeutil import from_ts, utcnow
from server.db.connect import open_database

__all__ = ["run_devices"]

_PER_SIM = 5000
# Simulators run this much longer than the measured span, so all are still connected
# when the database is read.
_GRACE_S = 30.0
# Up to the target (5,000) and beyond, to find where this machine stops. Each process
# may hold 20,000 files here (ulimit -Hn), which caps Mosquitto's connections below that.
SIZES = (1000, 5000, 10_000, 15_000, 19_500)


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
            asyncio.run(register_devices(db_url, ids))
            server = start_server(server_config(root, broker, db_url), root / "server.log")
            # One simulator process drives up to _PER_SIM devices (one Python process
            # with 20,000 paho clients is itself the limit, not the broker or server).
            sims = []
            for n, start in enumerate(range(0, size, _PER_SIM)):
                creds = root / f"creds-{n}.json"
                creds.write_text(json.dumps({d: broker.passwords[d]
                                             for d in ids[start : start + _PER_SIM]}))
                sims.append(creds)
            started = time.monotonic()
            cpu_before = {name: _cpu_seconds(p.pid) for name, p in
                          (("broker", broker.process), ("server", server))}
            procs = [subprocess.Popen(
                [sys.executable, "-m", "doorwatch", "sim", "--credentials", str(creds),
                 "--port", str(broker.port), "--data-dir", str(root / f"sim-{n}"),
                 "--events", "0", "--heartbeat-interval", str(interval_s),
                 "--duration", str(duration_s + _GRACE_S)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                for n, creds in enumerate(sims)]
            # Judged while every simulator still runs: they connect at different speeds
            # and so end at different times, and a fleet that already left would look
            # stale next to one still leaving.
            time.sleep(max(0.0, started + duration_s - time.monotonic()))
            elapsed = time.monotonic() - started
            cpu = {name: round((_cpu_seconds(p.pid) - cpu_before[name]) / elapsed * 100, 1)
                   for name, p in (("broker", broker.process), ("server", server))}
            fresh, rejected = asyncio.run(_fresh(db_url, 2 * interval_s + 2))
            outputs = [p.communicate(timeout=_GRACE_S + 600) for p in procs]
            stop(server)
    results = [json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
               for out, _ in outputs]
    failed = [err[-500:] for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode]
    connected = sum(r.get("connected_at_end") or 0 for r in results)
    ok = not failed and connected == size and fresh == size and rejected == 0
    return {"devices": size, "simulator_processes": len(procs),
            "heartbeat_interval_s": interval_s, "duration_s": duration_s,
            "connected_at_end": connected,
            "seconds_to_connect_all": max((r.get("connect_s") or 0 for r in results), default=0),
            "heartbeats_sent": sum(r.get("heartbeats_sent") or 0 for r in results),
            "fresh_in_db": fresh, "rejected": rejected, "cpu_percent": cpu, "no_loss": ok,
            "sim_error": "\n".join(failed)}


def run_devices(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
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
    sizes = tuple(int(s) for s in sys.argv[1:]) or SIZES
    print(json.dumps(run_devices(sizes), indent=2))

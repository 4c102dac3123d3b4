"""Person crosses the threshold -> grid worker's phone, on the production path.

Real Mosquitto with the shipped configuration (the device over TLS, as in the
field; the server on the loopback listener), the server process on SQLite, a
provisioned device and ``doorwatch agent run --simulate``: the synthetic camera
renders a person walking out of the door (mock reed switch driven with it), the
real analyzer decides, the agent reports the exit early (wire v2) through its
durable outbox, the server opens the breach and Apprise (``json://``) posts it
to a local HTTP receiver standing in for the worker's phone.

Latency = the receiver's clock when the alert arrives - the wall time of the
frame in which the synthetic person's feet pass the sill (logged by the
simulated household as ``simulated person crosses``; same machine, same
clock). Each alert is matched to the latest crossing before it; the alerts are
told apart from the later verdict messages by their title.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, database, mosquitto, server_config, start_server, stop
from bench.phone import Phone, seed_worker

__all__ = ["run_crossing"]

DEVICE = "cross-0001"
# Breach alerts only (an exit the analyzer missed may come back as a visitor alert).
ALERT_TITLE = "[Quarantine alert] Breach"


class _Phone(Phone):
    """Records when each notification arrives, with its title."""

    def alerts(self) -> list[float]:
        return [at for at, body in self.received()
                if str(body.get("title", "")).startswith(ALERT_TITLE)]


def _crossings(log: Path) -> list[float]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if '"simulated person crosses"' in line:
            found.append(float(json.loads(line)["crossed_at"]))
    return found


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_crossing(samples: int = 60, mean_interval_s: float = 2.0,
                 timeout_s: float = 1800.0) -> dict[str, Any]:
    """Measure ``samples`` crossing -> webhook latencies (one exit per door opening)."""
    phone = _Phone()
    with tempfile.TemporaryDirectory(prefix="doorwatch-crossing-") as tmp:
        root = Path(tmp)
        with mosquitto(root, [DEVICE]) as broker, database("sqlite", root) as db:
            asyncio.run(seed_worker(db, f"json://127.0.0.1:{phone.port}/worker", DEVICE,
                                    language="en"))
            # Every exit its own incident (folding would keep later exits from notifying).
            server = start_server(server_config(root, broker, db, rules={"fold_window_s": 0.0}),
                                  root / "server.log")
            config = root / "agent.toml"
            config.write_text(f"""
device_id = "{DEVICE}"
data_dir = "{root / 'agent-data'}"
heartbeat_interval_s = 10
[mqtt]
host = "localhost"
port = {broker.dir.port}
tls = true
ca_file = "{broker.dir.ca_cert_file}"
[door]
quiet_s = 1.0
bounce_s = 0.0
""", encoding="utf-8")
            log = root / "agent.log"
            with log.open("ab") as handle:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "doorwatch", "agent", "run", "--simulate",
                     "-c", str(config), "--seed", "7", "--mean-interval", str(mean_interval_s),
                     "--exit-probability", "1", "--log-level", "INFO"],
                    stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                    env={**os.environ, "DOORWATCH_AGENT__MQTT__PASSWORD":
                         broker.passwords[DEVICE]})
            try:
                deadline = time.monotonic() + timeout_s
                while len(phone.alerts()) < samples and time.monotonic() < deadline:
                    if agent.poll() is not None:
                        raise RuntimeError(f"agent exited: {log.read_text()[-2000:]}")
                    time.sleep(0.5)
                time.sleep(3.0)  # the last verdicts
            finally:
                stop(agent)
                stop(server)
            crossings = _crossings(log)
            text = log.read_text(errors="replace")
            early_lines = [json.loads(line) for line in text.splitlines()
                           if '"msg": "early exit"' in line]
            early = len(early_lines)
            early_crossed = [float(e["crossed_at"]) for e in early_lines]
            verdict_lines = [json.loads(line) for line in text.splitlines()
                             if '"msg": "door episode verdict"' in line]
            verdicts = [v.get("verdict") for v in verdict_lines]
            verdict_times = [_epoch(v["ts"]) for v in verdict_lines]
            # Exits reported only at the episode's end (no early report): the old path.
            late = [line for line in text.splitlines()
                    if '"msg": "door episode"' in line and '"kind": "exit"' in line]
            if os.environ.get("DOORWATCH_BENCH_KEEP"):
                keep = Path(os.environ["DOORWATCH_BENCH_KEEP"])
                keep.mkdir(parents=True, exist_ok=True)
                (keep / "agent.log").write_text(text)
                (keep / "server.log").write_text((root / "server.log").read_text())
    phone.server.shutdown()
    alerts = phone.alerts()
    # The k-th alert is the k-th early report's (every exit opens its own incident); each
    # early report goes with the simulated crossing nearest the crossing it reported.
    latencies: list[float] = []
    matched: set[float] = set()
    for arrived, reported in zip(alerts, early_crossed, strict=False):
        crossed = min(crossings, key=lambda c: abs(c - reported))
        if abs(crossed - reported) < 1.0 and crossed not in matched:
            matched.add(crossed)
            latencies.append(arrived - crossed)
    # Crossings not reported early: in an episode already reported (a person leaving
    # while the door had not yet stayed shut quiet_s since the last exit) or missed.
    reported_until = list(zip(early_crossed, verdict_times, strict=False))
    counted = [c for c in crossings if not alerts or c <= alerts[-1]]
    merged = sum(1 for c in counted if c not in matched
                 and any(start < c < end for start, end in reported_until))
    unmatched = sum(1 for c in counted if c not in matched) - merged
    if not latencies:
        raise RuntimeError("no alert arrived")
    return {
        "samples": len(latencies), "crossings": len(crossings), "alerts": len(alerts),
        "crossings_in_an_episode_already_reported": merged,
        "crossings_missed": unmatched,
        "early_reports": early, "exits_reported_late": len(late),
        "verdicts": {v: verdicts.count(v) for v in sorted({str(v) for v in verdicts})},
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3), "min_s": round(min(latencies), 3),
    }


if __name__ == "__main__":
    print(json.dumps(run_crossing(int(sys.argv[1]) if len(sys.argv) > 1 else 60), indent=2))

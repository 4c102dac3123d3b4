"""Latency from a door event to the grid worker's notification, under background load.

A measuring device publishes an ``exit`` (QoS 1) for an armed household; the
server stores it, opens an incident, queues the notification and delivers it
through Apprise (``json://``) to a local HTTP receiver standing in for the
worker's phone. Latency = receipt time - the event's own timestamp, one event
at a time, while a fleet simulator keeps ``background_rate`` events/s of other
devices flowing through the same broker and server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import REPO, database, mosquitto, server_config, start_server, stop
from bench.phone import Phone, seed_worker
from broker.messages import Event, EventKind, encode, utc_now
from server.db.connect import open_database

__all__ = ["run_latency"]

MEASURED = "lat-0001"


class _Receiver(Phone):
    def arrival(self, count: int, timeout: float) -> float | None:
        """When the ``count``-th notification arrived (time.time()), or None if it never came."""
        post = self.wait(count, timeout)
        return None if post is None else post[0]


async def _stages(db_url: str) -> dict[str, float]:
    """Where the time goes: device -> stored, stored -> delivered (p50/p99, ms)."""
    from ground.timeutil import from_ts

    db = await open_database(db_url)
    try:
        rows = await db.fetch_all(
            "SELECT e.device_time, e.received_at, MIN(n.delivered_at) AS delivered "
            "FROM events e JOIN incident_events ie ON ie.event_row_id = e.id "
            "JOIN notifications n ON n.incident_id = ie.incident_id "
            "WHERE e.device_id = ? AND n.delivered_at IS NOT NULL GROUP BY e.id",
            (MEASURED,))
    finally:
        await db.close()

    def ms(a: str, b: str) -> float:
        return (from_ts(b) - from_ts(a)).total_seconds() * 1000

    stored = [ms(r["device_time"], r["received_at"]) for r in rows]
    delivered = [ms(r["received_at"], r["delivered"]) for r in rows]
    if not rows:
        return {}
    return {"to_stored_p50_ms": round(statistics.median(stored), 1),
            "to_stored_p99_ms": round(_percentile(stored, 0.99), 1),
            "stored_to_delivered_p50_ms": round(statistics.median(delivered), 1),
            "stored_to_delivered_p99_ms": round(_percentile(delivered, 0.99), 1)}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(share * (len(ordered) - 1)))
    return ordered[index]


def run_latency(samples: int = 150, background_rate: float = 1000.0) -> dict[str, Any]:
    """Measure ``samples`` door-to-notification latencies under ``background_rate`` events/s."""
    background = [f"bg-{i:03d}" for i in range(20)]
    receiver = _Receiver()
    with tempfile.TemporaryDirectory(prefix="doorwatch-latency-") as tmp:
        root = Path(tmp)
        with mosquitto(root, [MEASURED, *background]) as broker, database("sqlite", root) as db:
            asyncio.run(seed_worker(db, f"json://127.0.0.1:{receiver.port}/worker", MEASURED,
                                    background=background))
            server = start_server(server_config(root, broker, db, rules={"fold_window_s": 0.0}),
                                  root / "server.log")
            creds = root / "bg.json"
            creds.write_text(json.dumps({d: broker.passwords[d] for d in background}))
            per_device = int(background_rate * (samples * 0.25 + 30) / len(background))
            sim = subprocess.Popen(
                [sys.executable, "-m", "doorwatch", "sim", "--credentials", str(creds),
                 "--port", str(broker.port), "--data-dir", str(root / "sim"),
                 "--events", str(per_device), "--rate", str(background_rate)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=MEASURED)
            client.username_pw_set(MEASURED, broker.passwords[MEASURED])
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            time.sleep(3.0)  # let the background load reach its rate
            latencies: list[float] = []
            timeouts = 0
            try:
                for seq in range(1, samples + 1):
                    event = Event(device_id=MEASURED, seq=seq, time=utc_now(),
                                  kind=EventKind.EXIT, armed=True)
                    client.publish(f"doorwatch/v1/dev/{MEASURED}/event", encode(event), qos=1)
                    arrived = receiver.arrival(seq - timeouts, timeout=5.0)
                    if arrived is None:
                        timeouts += 1
                    else:
                        latencies.append((arrived - event.time.timestamp()) * 1000)
                    time.sleep(0.25)
            finally:
                client.loop_stop()
                client.disconnect()
                sim.kill()
                stop(server)
            stages = asyncio.run(_stages(db))
    receiver.server.shutdown()
    return {
        "samples": len(latencies), "timeouts": timeouts,
        "background_events_per_s": background_rate,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "stages": stages,
    }


if __name__ == "__main__":
    print(json.dumps(run_latency(int(sys.argv[1]) if len(sys.argv) > 1 else 150), indent=2))

"""One-tap acknowledge: the worker taps the link's button -> the incident is acknowledged.

Production path: Mosquitto with the shipped configuration, the server process
(consumer, rules, notifier and the HTTP dashboard), an exit published by a
provisioned device, the alert delivered by Apprise ``json://`` to a local
receiver (the phone). The link is taken from the delivered text; the phone's
"page open" is a GET of it, the tap a POST. Latency = from sending the POST to
the incident read back as acknowledged from the database (the response comes
after the commit; the read-back proves it).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import database, mosquitto, server_config, start_server, stop
from bench.phone import Phone, seed_worker
from broker.messages import Event, EventKind, encode, utc_now
from ground.ports import free_ports

__all__ = ["run_ack_link"]

DEVICE = "ack-0001"


class _Phone(Phone):
    def wait_message(self, count: int, timeout: float) -> str | None:
        """The ``count``-th notification's message text, or None if it never came."""
        post = self.wait(count, timeout)
        return None if post is None else str(post[1].get("message", ""))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_ack_link(samples: int = 50) -> dict[str, Any]:
    """Acknowledge ``samples`` breaches through their links; latencies in ms."""
    phone = _Phone()
    (http_port,) = free_ports(1)
    opened: list[float] = []
    acked: list[float] = []
    with tempfile.TemporaryDirectory(prefix="doorwatch-ack-") as tmp:
        root = Path(tmp)
        with mosquitto(root, [DEVICE]) as broker, database("sqlite", root) as db:
            asyncio.run(seed_worker(db, f"json://127.0.0.1:{phone.port}/worker", DEVICE,
                                    language="en"))
            base = f"http://127.0.0.1:{http_port}"
            server = start_server(server_config(
                root, broker, db, rules={"fold_window_s": 0.0},
                http={"enabled": True, "port": http_port, "cookie_secure": False},
                notify={"dashboard_url": base}), root / "server.log")
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE)
            client.username_pw_set(DEVICE, broker.passwords[DEVICE])
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            sqlite_path = db.removeprefix("sqlite:///")
            try:
                with httpx.Client(timeout=10) as http:
                    for seq in range(1, samples + 1):
                        event = Event(device_id=DEVICE, seq=seq, time=utc_now(),
                                      kind=EventKind.EXIT, armed=True)
                        client.publish(f"doorwatch/v1/dev/{DEVICE}/event", encode(event), qos=1)
                        text = phone.wait_message(seq, 10.0)
                        if text is None:
                            raise RuntimeError(f"alert {seq} did not arrive")
                        match = re.search(r"(https?://\S+/a/\S+)", text)
                        if match is None:
                            raise RuntimeError(f"no ack link in {text!r}")
                        link = match.group(1)
                        started = time.perf_counter()
                        page = http.get(link)
                        opened.append((time.perf_counter() - started) * 1000)
                        if 'data-state="ask"' not in page.text:
                            raise RuntimeError(f"ack page: {page.status_code}")
                        started = time.perf_counter()
                        response = http.post(link)
                        with sqlite3.connect(sqlite_path) as conn:
                            state = conn.execute(
                                "SELECT i.state FROM incidents i JOIN ack_links a "
                                "ON a.incident_id = i.id WHERE a.nonce IS NOT NULL "
                                "ORDER BY i.id DESC LIMIT 1").fetchone()[0]
                        acked.append((time.perf_counter() - started) * 1000)
                        if response.status_code != 200 or state != "acknowledged":
                            raise RuntimeError(f"not acknowledged: {response.status_code} {state}")
            finally:
                client.loop_stop()
                client.disconnect()
                stop(server)
    phone.server.shutdown()
    return {
        "samples": len(acked),
        "page_open_p50_ms": round(statistics.median(opened), 1),
        "page_open_p99_ms": round(_percentile(opened, 0.99), 1),
        "tap_to_acknowledged_p50_ms": round(statistics.median(acked), 1),
        "tap_to_acknowledged_p99_ms": round(_percentile(acked, 0.99), 1),
        "tap_to_acknowledged_max_ms": round(max(acked), 1),
    }


if __name__ == "__main__":
    print(json.dumps(run_ack_link(int(sys.argv[1]) if len(sys.argv) > 1 else 50), indent=2))

"""Dashboard reads during a backlog drain: what a supervisor waits for while ingest runs.

The server is started on a 100,000-event backlog (queued in its persistent
session while it was down) with HTTP on. The 20 devices sit in 20 armed
households under one grid worker, so the pages have rows to show. While the
server drains, one logged-in supervisor requests the dashboard's pages
(``/incidents``, ``/households``, ``/devices``) in turn, 20 ms apart, and
``/healthz`` (one read through ``Database.fetch_one``, figures comparable with
the first version of this benchmark) between them. Reported: p50/p99 per page
and over the pages together, the number answered during the drain (more is
better), and the drain itself (events/s from the first stored event to the
last, and from the server's start until all are stored). The drain of 100,000
events takes seconds, so one run gives a few dozen reads: ``samples_ms`` holds
them, for pooling several runs into one p99. Once the drain is over the same
reads are repeated on the idle server (``idle``), so that what the drain adds
is told apart from what the pages cost by themselves.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import secrets
import socket
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench import harness
from bench.ingest import stored_events
from server.admin import add_household, add_worker, register_device
from server.db.connect import open_database
from server.web.users import create_user

__all__ = ["run_dashboard"]

PAGES = ("/incidents", "/households", "/devices")
HEALTH = "/healthz"
IDLE_ROUNDS = 10  # each page this often once the drain is over
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(sorted_s: list[float], share: float) -> float:
    return round(sorted_s[min(len(sorted_s) - 1, int(share * len(sorted_s)))] * 1000, 1)


async def _seed(db_url: str, devices: list[str], password: str) -> None:
    """Each device in an armed household of one worker; a supervisor who reads the pages."""
    db = await open_database(db_url)
    try:
        # The worker is never notified: handovers open no incident.
        worker = await add_worker(db, "bench worker", apprise_urls=["json://127.0.0.1:9/none"])
        for n, device_id in enumerate(devices):
            household = await add_household(db, f"bench household {n}", f"bench road {n}",
                                             worker_id=worker)
            await register_device(db, device_id, household_id=household)
        await create_user(db, "bench-supervisor", password, "supervisor")
    finally:
        await db.close()


def _login(base: str, password: str) -> urllib.request.OpenerDirector:
    """An opener holding a supervisor's session cookie (logged in through the form)."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/login", timeout=60) as page:
        match = _CSRF.search(page.read().decode())
    assert match, "no csrf_token on the login page"
    form = urllib.parse.urlencode({"username": "bench-supervisor", "password": password,
                                   "csrf_token": match.group(1), "next": "/incidents"})
    with opener.open(f"{base}/login", data=form.encode(), timeout=60) as answer:
        landed = answer.geturl()
    if not landed.endswith("/incidents"):
        raise RuntimeError(f"login failed (landed on {landed})")
    return opener


def _figures(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    if not ordered:
        return {"answered": 0}
    return {"answered": len(ordered), "p50_ms": _percentile(ordered, 0.5),
            "p99_ms": _percentile(ordered, 0.99), "max_ms": round(ordered[-1] * 1000, 1)}


def run_dashboard(kind: str = "sqlite", events: int = 100_000, devices: int = 20) -> dict[str, Any]:
    """Page read latency (ms) while the server drains ``events`` into ``kind``."""
    ids = [f"bench-{i:04d}" for i in range(devices)]
    per_device = events // devices
    total = per_device * devices
    password = secrets.token_urlsafe(18)
    latencies: dict[str, list[float]] = {path: [] for path in (*PAGES, HEALTH)}
    idle: dict[str, list[float]] = {path: [] for path in (*PAGES, HEALTH)}
    with tempfile.TemporaryDirectory(prefix="doorwatch-bench-") as tmp:
        root = Path(tmp)
        with harness.mosquitto(root, ids) as broker, harness.database(kind, root) as db_url:
            asyncio.run(_seed(db_url, ids, password))
            port = _free_port()
            config = harness.server_config(
                root, broker, db_url,
                http={"enabled": True, "port": port, "cookie_secure": False})
            log = root / "server.log"
            base = f"http://127.0.0.1:{port}"
            # The first start creates the server's persistent session; the backlog queues
            # there. The login is done now so that no login is inside the figures.
            first = harness.start_server(config, log)
            try:
                opener = _login(base, password)
            finally:
                harness.stop(first)
            harness.publish_lines(broker, {d: harness.event_lines(d, 1, per_device) for d in ids})
            started = time.monotonic()
            server = harness.start_server(config, log)
            order = [path for page in PAGES for path in (page, HEALTH)]

            def read(path: str) -> float:
                began = time.perf_counter()
                with opener.open(base + path, timeout=60) as answer:
                    answer.read()
                    if answer.geturl() != base + path:  # redirected: the session is gone
                        raise RuntimeError(f"{path} answered from {answer.geturl()}")
                return time.perf_counter() - began

            deadline = time.monotonic() + 900
            checked, turn, drained_s = 0.0, 0, 0.0
            while time.monotonic() < deadline:
                path = order[turn % len(order)]
                turn += 1
                latencies[path].append(read(path))
                if time.monotonic() - checked > 0.5:
                    checked = time.monotonic()
                    if asyncio.run(stored_events(db_url))[0] >= total:
                        drained_s = checked - started
                        break
                time.sleep(0.02)
            stored, span = asyncio.run(stored_events(db_url))
            # The same reads on the idle server with the same data: what the drain adds.
            for turn in range(IDLE_ROUNDS * len(order)):
                path = order[turn % len(order)]
                idle[path].append(read(path))
                time.sleep(0.02)
            harness.stop(server)
    pages = [s for page in PAGES for s in latencies[page]]
    return {"backend": kind, "events": total, "stored": stored,
            "drain_events_per_s": round(stored / span) if span else None,
            "start_to_drained_s": round(drained_s, 1),
            "pages": _figures(pages),
            **{path: _figures(values) for path, values in latencies.items()},
            # A drain gives a few dozen reads: runs are pooled for a p99 worth the name.
            "samples_ms": {path: [round(s * 1000, 1) for s in values]
                           for path, values in latencies.items()},
            "idle": {"pages": _figures([s for page in PAGES for s in idle[page]]),
                     **{path: _figures(values) for path, values in idle.items()}}}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run_dashboard(sys.argv[1] if len(sys.argv) > 1 else "sqlite",
                                   int(sys.argv[2]) if len(sys.argv) > 2 else 100_000),
                     indent=2))

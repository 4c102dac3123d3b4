"""A local HTTP receiver standing in for the worker's phone (Apprise ``json://`` posts).

Shared by the benchmarks that time a notification end to end (``ack_link``,
``crossing``, ``latency``): each POST is recorded with its arrival time (taken
as soon as the body is read, before parsing) and its JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server.admin import add_household, add_worker, register_device
from server.db.connect import open_database

__all__ = ["Phone", "seed_worker"]


class Phone:
    """Records every POST as ``(arrival time.time(), JSON body)``; serves on 127.0.0.1."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict[str, Any]]] = []
        self._cond = threading.Condition()
        phone = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}  # still an arrival: the timing benches count it
                with phone._cond:
                    phone.posts.append((at, body if isinstance(body, dict) else {}))
                    phone._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass  # no request log on the bench's output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float) -> tuple[float, dict[str, Any]] | None:
        """The ``count``-th post (1-based), waiting up to ``timeout`` s; None if it never came."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.posts) >= count, timeout)
            return self.posts[count - 1] if len(self.posts) >= count else None

    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """A copy of every post so far."""
        with self._cond:
            return list(self.posts)


async def seed_worker(db_url: str, phone_url: str, device: str, *, language: str = "zh_CN",
                      background: list[str] | None = None) -> None:
    """One worker notified at ``phone_url``, one household with ``device`` on it, and
    ``background`` devices registered to no household (load only, never notified)."""
    db = await open_database(db_url)
    try:
        worker = await add_worker(db, "bench worker", apprise_urls=[phone_url],
                                  language=language)
        household = await add_household(db, "bench household", "bench address",
                                         worker_id=worker)
        await register_device(db, device, household_id=household)
        for device_id in background or []:
            await register_device(db, device_id, household_id=None)
    finally:
        await db.close()

"""What a dashboard request does off the event loop: its database reads, nothing else.

During a backlog drain the event loop is busy validating batches, and every
trip a request makes to another thread waits for the loop to take up the
result; the figures are in bench/NOTES.md ("Dashboard reads during a drain,
diagnosed"). So a page leaves the loop once per read (SQLite's read
connection) and never for FastAPI's thread pool (which runs plain-function
dependencies).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from server.db.base import Database, Params, Row
from tests.web.helpers import login


async def test_a_request_leaves_the_event_loop_once_per_read(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await login(client, "super")
    loop = asyncio.get_running_loop()
    wakes: list[str] = []
    reads: list[str] = []
    wake = loop.call_soon_threadsafe
    read = db.fetch_all

    def counted_wake(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakes.append(threading.current_thread().name)
        return wake(callback, *args, **kwargs)

    async def counted_read(sql: str, params: Params = ()) -> list[Row]:
        reads.append(sql)
        return await read(sql, params)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted_wake)
    monkeypatch.setattr(db, "fetch_all", counted_read)
    try:
        for path in ("/healthz", "/incidents", "/households", "/devices"):
            wakes.clear()
            reads.clear()
            response = await client.get(path)
            assert response.status_code == 200, path
            assert reads, path
            assert len(wakes) == len(reads), (path, wakes, reads)
            # The logged-in user and their session are one read, not two.
            if path != "/healthz":
                assert sum("web_sessions" in sql or "FROM users" in sql
                           for sql in reads) == 1, (path, reads)
    finally:
        monkeypatch.undo()

"""Live updates: new incidents pushed to open pages as server-sent events.

Each stream polls the database for incidents newer than the last one it
sent (within the user's scope). Reading the database, not an in-process
signal, means incidents opened by any server instance reach every page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import Request

from server.db.base import Database
from server.web.queries import incidents_since
from server.web.users import User

__all__ = ["incident_events"]

POLL_S = 1.0
KEEPALIVE_S = 15.0


async def incident_events(
    request: Request, db: Database, user: User, after_id: int, poll_s: float = POLL_S
) -> AsyncIterator[str]:
    """SSE frames: one ``incident`` event per new visible incident, keep-alives between."""
    last = after_id
    idle = 0.0
    yield "retry: 3000\n\n"
    stopping: asyncio.Event = request.app.state.stopping
    while not stopping.is_set() and not await request.is_disconnected():
        rows = await incidents_since(db, user, last)
        for row in rows:
            last = int(row["id"])
            data = json.dumps({"id": last, "kind": row["kind"], "household": row["household"]},
                              ensure_ascii=False)
            yield f"id: {last}\nevent: incident\ndata: {data}\n\n"
        idle = 0.0 if rows else idle + poll_s
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), poll_s)

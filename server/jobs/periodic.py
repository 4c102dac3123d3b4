"""The one timer loop every periodic job runs on.

Escalation, the quarantine schedule, device watch and retention each do one
step per interval; a step that fails is logged with its job's name and tried
again at the next interval, so one bad row or a database outage never ends
the server's task group. Cancelling the task is how a job stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn

from ground.logs import get_logger

__all__ = ["run_periodically"]

log = get_logger(__name__)


async def run_periodically(
    job: str, step: Callable[[], Awaitable[object]], interval_s: float
) -> NoReturn:
    """Await ``step()`` every ``interval_s`` seconds until cancelled; log and retry failures."""
    while True:
        try:
            await step()
        except Exception:
            log.exception("periodic job step failed; retrying", extra={"job": job})
        await asyncio.sleep(interval_s)

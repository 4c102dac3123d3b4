"""The one timer loop every periodic job runs on.

Escalation, the quarantine schedule, device watch and retention each do one
step per interval; a step that fails is logged with its job's name and tried
again at the next interval, so one bad row or a database outage never ends
the server's task group. Cancelling the task is how a job stops.

Jobs that run at a time of day (follow-up reminder, grid reports, check-ins)
claim each run in ``scheduled_jobs`` with :func:`claim_due_run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import NoReturn

from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.db.base import Transaction

__all__ = ["claim_due_run", "run_periodically"]

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


async def claim_due_run(tx: Transaction, job: str, now: datetime, *, first: datetime,
                        following: datetime, instance: str) -> datetime | None:
    """Claim ``job``'s run if it is due at ``now``; return the time it was due, else None.

    The very first call for a job only schedules it at ``first``. A due run is
    claimed with a conditional UPDATE on ``next_run_at`` (moving it to
    ``following``), so with several instances one of them wins it, and a run
    that fell due while the server was down is claimed when it starts.
    """
    await tx.execute("INSERT INTO scheduled_jobs (job, next_run_at) VALUES (?, ?) "
                     "ON CONFLICT (job) DO NOTHING", (job, to_ts(first)))
    row = await tx.fetch_one("SELECT next_run_at FROM scheduled_jobs WHERE job = ?", (job,))
    assert row is not None
    due = from_ts(row["next_run_at"])
    if due > now:
        return None
    won = await tx.execute(
        "UPDATE scheduled_jobs SET next_run_at = ?, last_run_at = ?, last_run_by = ? "
        "WHERE job = ? AND next_run_at = ?",
        (to_ts(following), to_ts(now), instance, job, row["next_run_at"]))
    return due if won else None

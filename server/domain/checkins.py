"""Presence check-ins asked of a household's devices (issue 19 item 2).

A check-in is a row per device: :func:`request_checkin` writes it (a worker
from the dashboard, or the schedule); server/jobs/checkin_watch.py publishes
the ``checkin`` command, reads the device's outcome event, and opens a
``missed_checkin`` incident when the outcome is not ``present`` or no
outcome arrives in time. Presence only: see README "Presence check-in".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import uuid4

from ground.timeutil import to_ts
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.errors import InvalidChangeError, NotFoundError

__all__ = ["list_checkins", "request_checkin"]


async def request_checkin(db: Database, household_id: int, *, actor: str, window_s: float,
                          now: datetime) -> list[int]:
    """Ask every device of the household for a check-in at ``now`` (sent once that time has
    come); return the check-ins' ids."""
    async with db.transaction() as tx:
        household = await tx.fetch_one("SELECT id, armed FROM households WHERE id = ? "
                                       "AND purged_at IS NULL", (household_id,))
        if household is None:
            raise NotFoundError("household", household_id)
        devices = await tx.fetch_all(
            "SELECT device_id FROM devices WHERE household_id = ? AND revoked_at IS NULL "
            "ORDER BY device_id", (household_id,))
        if not devices:
            raise InvalidChangeError("household", household_id, "no_device")
        ids = []
        for device in devices:
            rows = await tx.fetch_all(
                "INSERT INTO checkins (household_id, device_id, command_id, requested_by, "
                "requested_at, window_s, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (household_id, device["device_id"], str(uuid4()), actor, to_ts(now), window_s,
                 to_ts(now + timedelta(seconds=window_s))))
            ids.append(int(rows[0]["id"]))
        await audit(tx, actor, "household.checkin", f"household:{household_id}",
                    f"{len(ids)} devices, window {window_s:.0f} s")
    return ids


async def list_checkins(db: Database, household_id: int, limit: int = 30) -> list[Row]:
    """The household's latest check-ins, newest first."""
    return await db.fetch_all(
        "SELECT * FROM checkins WHERE household_id = ? ORDER BY requested_at DESC, id DESC "
        "LIMIT ?", (household_id, limit))

"""Devices and their assignment history.

A device is assigned to at most one household at a time; every assignment is
a row in ``device_assignments`` with its start and end, and every event
remembers the household it was recorded for. Replacing a broken Pi therefore
keeps the household's whole history, under both device ids.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from broker.topics import is_valid_device_id
from ground.timeutil import now_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import fetch_required, when
from server.domain.errors import InvalidChangeError, UnknownDeviceError

__all__ = [
    "Assignment",
    "Device",
    "assign_device",
    "assignment_history",
    "get_device",
    "list_devices",
    "register_device",
    "replace_device",
    "unassign_device",
]


class Device(BaseModel):
    """A device as stored, with its health as last reported."""

    device_id: str
    household_id: int | None
    registered_at: datetime
    max_seq: int
    status: str | None
    status_at: datetime | None
    last_heartbeat_at: datetime | None
    arm_command: str | None
    arm_published_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> Device:
        """Build from a ``devices`` row."""
        return cls(
            device_id=row["device_id"],
            household_id=None if row["household_id"] is None else int(row["household_id"]),
            registered_at=when(row["registered_at"]), max_seq=int(row["max_seq"]),
            status=row["status"], status_at=when(row["status_at"]),
            last_heartbeat_at=when(row["last_heartbeat_at"]), arm_command=row["arm_command"],
            arm_published_at=when(row["arm_published_at"]),
        )


class Assignment(BaseModel):
    """One period during which a device watched a household's door."""

    device_id: str
    household_id: int
    assigned_at: datetime
    unassigned_at: datetime | None
    reason: str | None


def _check_id(device_id: str) -> None:
    if not is_valid_device_id(device_id):
        raise InvalidChangeError("device", device_id, "invalid_id",
                                 "use 2-64 of a-z, 0-9, '-' and '_'")


async def register_device(
    db: Database, device_id: str, *, household_id: int | None = None, actor: str
) -> None:
    """Make the server accept ``device_id``'s messages; assign it if ``household_id`` is given.

    Registering an existing device only (re)assigns it, so provisioning may call
    this again safely.
    """
    _check_id(device_id)
    async with db.transaction() as tx:
        created = await tx.fetch_all(
            "INSERT INTO devices (device_id, registered_at) VALUES (?, ?) "
            "ON CONFLICT (device_id) DO NOTHING RETURNING device_id",
            (device_id, now_ts()),
        )
        if created:
            await audit(tx, actor, "device.register", f"device:{device_id}", None)
        if household_id is not None:
            await _assign(tx, device_id, household_id, actor=actor, reason="registered")


async def _close_assignment(tx: Transaction, device_id: str, reason: str | None) -> int | None:
    row = await tx.fetch_one("SELECT household_id FROM devices WHERE device_id = ?", (device_id,))
    previous = None if row is None or row["household_id"] is None else int(row["household_id"])
    if reason is None:
        await tx.execute("UPDATE device_assignments SET unassigned_at = ? "
                         "WHERE device_id = ? AND unassigned_at IS NULL", (now_ts(), device_id))
    else:
        # Keep why it started and add why it ended.
        await tx.execute(
            "UPDATE device_assignments SET unassigned_at = ?, "
            "reason = COALESCE(reason || '; ', '') || ? "
            "WHERE device_id = ? AND unassigned_at IS NULL", (now_ts(), reason, device_id))
    return previous


async def _assign(
    tx: Transaction, device_id: str, household_id: int, *, actor: str, reason: str | None
) -> None:
    household = await fetch_required(
        tx, "household", household_id,
        "SELECT id, armed, quarantine_start FROM households WHERE id = ?", (household_id,))
    current = await tx.fetch_one("SELECT household_id FROM devices WHERE device_id = ?",
                                 (device_id,))
    if current is not None and current["household_id"] == household_id:
        return  # already there: keep the running assignment instead of splitting it
    previous = await _close_assignment(tx, device_id, None)
    await tx.execute(
        "UPDATE devices SET household_id = ?, offline_incident_id = NULL WHERE device_id = ?",
        (household_id, device_id),
    )
    if household["quarantine_start"] is not None:
        # The schedule manages this household's arm state: tell the new device.
        # (A household without a period is armed by hand; its devices keep theirs.)
        command = "arm" if household["armed"] else "disarm"
        await tx.execute(
            "UPDATE devices SET arm_command = ?, arm_command_at = ?, arm_published_at = NULL "
            "WHERE device_id = ?", (command, now_ts(), device_id))
    await tx.execute(
        "INSERT INTO device_assignments (device_id, household_id, assigned_at, reason) "
        "VALUES (?, ?, ?, ?)", (device_id, household_id, now_ts(), reason),
    )
    await audit(tx, actor, "device.assign", f"device:{device_id}",
                f"household:{household_id}" + (f" (was household:{previous})" if previous else ""))


async def assign_device(
    db: Database, device_id: str, household_id: int, *, actor: str, reason: str | None = None
) -> None:
    """Assign a registered device to a household (ending any earlier assignment)."""
    async with db.transaction() as tx:
        await get_device(tx, device_id)
        await _assign(tx, device_id, household_id, actor=actor, reason=reason)


async def unassign_device(db: Database, device_id: str, *, actor: str, reason: str) -> None:
    """Take a device off its household (broken, returned); it is told to disarm."""
    async with db.transaction() as tx:
        await _unassign(tx, device_id, actor=actor, reason=reason)


async def _unassign(tx: Transaction, device_id: str, *, actor: str, reason: str) -> int:
    device = await get_device(tx, device_id)
    if device.household_id is None:
        raise InvalidChangeError("device", device_id, "not_assigned")
    await _close_assignment(tx, device_id, reason)
    await tx.execute(
        "UPDATE devices SET household_id = NULL, arm_command = 'disarm', arm_command_at = ?, "
        "arm_published_at = NULL, offline_incident_id = NULL WHERE device_id = ?",
        (now_ts(), device_id),
    )
    await audit(tx, actor, "device.unassign", f"device:{device_id}",
                f"household:{device.household_id}: {reason}"[:2000])
    return device.household_id


async def replace_device(
    db: Database, old_device_id: str, new_device_id: str, *, actor: str, reason: str
) -> int:
    """Swap a household's device for another (registered) one; return the household id.

    The household's events, incidents and assignment history stay; the new
    device gets the household's arm state as a retained command.
    """
    async with db.transaction() as tx:
        await get_device(tx, new_device_id)
        household_id = await _unassign(tx, old_device_id, actor=actor, reason=f"replaced: {reason}")
        await _assign(tx, new_device_id, household_id, actor=actor,
                      reason=f"replaces {old_device_id}")
        return household_id


async def get_device(conn: Database | Transaction, device_id: str) -> Device:
    """One device (:class:`UnknownDeviceError` if it is not registered)."""
    row = await conn.fetch_one("SELECT * FROM devices WHERE device_id = ?", (device_id,))
    if row is None:
        raise UnknownDeviceError(device_id)
    return Device.from_row(row)


async def list_devices(db: Database, *, household_id: int | None = None) -> list[Device]:
    """Registered devices, optionally only those of one household."""
    if household_id is None:
        rows = await db.fetch_all("SELECT * FROM devices ORDER BY device_id")
    else:
        rows = await db.fetch_all("SELECT * FROM devices WHERE household_id = ? "
                                  "ORDER BY device_id", (household_id,))
    return [Device.from_row(r) for r in rows]


async def assignment_history(
    db: Database, *, household_id: int | None = None, device_id: str | None = None
) -> list[Assignment]:
    """Assignments of a household's devices (or of one device), oldest first."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if household_id is not None:
        where.append("household_id = ?")
        params.append(household_id)
    if device_id is not None:
        where.append("device_id = ?")
        params.append(device_id)
    rows = await db.fetch_all(
        "SELECT device_id, household_id, assigned_at, unassigned_at, reason FROM "  # noqa: S608
        f"device_assignments WHERE {' AND '.join(where)} ORDER BY assigned_at, id", params,
    )
    return [Assignment(device_id=r["device_id"], household_id=int(r["household_id"]),
                       assigned_at=when(r["assigned_at"]), unassigned_at=when(r["unassigned_at"]),
                       reason=r["reason"]) for r in rows]

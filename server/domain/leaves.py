"""Permitted leaves: a household member may go out (hospital, testing) within a window.

States: ``granted`` (nobody left yet) -> ``out`` (an exit was seen during the
window) -> ``returned`` (an entry was seen); ``overdue`` when the window ended
while still out (an overdue-return incident is opened); ``ended`` when a
worker closes it early; ``cancelled`` when withdrawn before use.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ground.timeutil import now_ts, to_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import fetch_required, when
from server.domain.errors import InvalidChangeError

__all__ = [
    "Leave",
    "LeaveIn",
    "LeaveState",
    "LeaveUpdate",
    "active_leave",
    "cancel_leave",
    "end_leave",
    "get_leave",
    "grant_leave",
    "leave_overlapping",
    "list_leaves",
    "update_leave",
]


class LeaveState(StrEnum):
    """Where a permitted leave stands."""

    GRANTED = "granted"
    OUT = "out"
    RETURNED = "returned"
    OVERDUE = "overdue"
    ENDED = "ended"
    CANCELLED = "cancelled"


# States in which the window still permits an exit.
_USABLE = (LeaveState.GRANTED.value, LeaveState.OUT.value, LeaveState.RETURNED.value)


class LeaveIn(BaseModel):
    """A leave to grant."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    household_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _window(self) -> LeaveIn:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("leave times need a time zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("a leave must end after it starts")
        return self


class LeaveUpdate(BaseModel):
    """Change a leave's window or reason (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    reason: str | None = Field(None, min_length=1, max_length=500)


class Leave(BaseModel):
    """A permitted leave as stored."""

    id: int
    household_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    granted_by: str
    state: LeaveState
    exited_at: datetime | None
    returned_at: datetime | None
    incident_id: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Leave:
        """Build from a ``leaves`` row."""
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            starts_at=when(row["starts_at"]), ends_at=when(row["ends_at"]),
            reason=row["reason"], granted_by=row["granted_by"], state=LeaveState(row["state"]),
            exited_at=when(row["exited_at"]), returned_at=when(row["returned_at"]),
            incident_id=None if row["incident_id"] is None else int(row["incident_id"]),
            created_at=when(row["created_at"]),
        )


async def grant_leave(db: Database, leave: LeaveIn, *, actor: str) -> int:
    """Permit the household to go out in the window; return the leave id."""
    async with db.transaction() as tx:
        await fetch_required(tx, "household", leave.household_id,
                             "SELECT id FROM households WHERE id = ?", (leave.household_id,))
        row = await tx.fetch_one(
            "INSERT INTO leaves (household_id, starts_at, ends_at, reason, granted_by, state, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (leave.household_id, to_ts(leave.starts_at), to_ts(leave.ends_at), leave.reason,
             actor, LeaveState.GRANTED.value, now_ts()),
        )
        assert row is not None
        await audit(tx, actor, "leave.grant", f"household:{leave.household_id}",
                    f"leave:{row['id']} {to_ts(leave.starts_at)}..{to_ts(leave.ends_at)} "
                    f"{leave.reason}"[:2000])
        return int(row["id"])


async def get_leave(conn: Database | Transaction, leave_id: int) -> Leave:
    """One leave (:class:`NotFoundError` if none)."""
    return Leave.from_row(await fetch_required(conn, "leave", leave_id,
                                               "SELECT * FROM leaves WHERE id = ?", (leave_id,)))


async def list_leaves(
    db: Database, *, household_id: int | None = None, active_at: datetime | None = None
) -> list[Leave]:
    """Leaves (of one household; or only those whose window contains ``active_at``)."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if household_id is not None:
        where.append("household_id = ?")
        params.append(household_id)
    if active_at is not None:
        where.append("starts_at <= ? AND ends_at > ?")
        params += [to_ts(active_at), to_ts(active_at)]
        where.append(f"state IN ({','.join('?' for _ in _USABLE)})")
        params += list(_USABLE)
    rows = await db.fetch_all(
        f"SELECT * FROM leaves WHERE {' AND '.join(where)} ORDER BY starts_at DESC, id DESC",  # noqa: S608
        params,
    )
    return [Leave.from_row(r) for r in rows]


async def update_leave(db: Database, leave_id: int, change: LeaveUpdate, *, actor: str) -> Leave:
    """Move a leave's window (e.g. the hospital visit takes longer) or fix its reason."""
    async with db.transaction() as tx:
        leave = await get_leave(tx, leave_id)
        if leave.state.value not in _USABLE:
            raise InvalidChangeError("leave", leave_id, "leave_not_active")
        starts = change.starts_at or leave.starts_at
        ends = change.ends_at or leave.ends_at
        if ends <= starts:
            raise InvalidChangeError("leave", leave_id, "leave_window")
        await tx.execute(
            "UPDATE leaves SET starts_at = ?, ends_at = ?, reason = ? WHERE id = ?",
            (to_ts(starts), to_ts(ends), change.reason or leave.reason, leave_id),
        )
        await audit(tx, actor, "leave.update", f"household:{leave.household_id}",
                    f"leave:{leave_id} {to_ts(starts)}..{to_ts(ends)}")
        return await get_leave(tx, leave_id)


async def end_leave(db: Database, leave_id: int, *, actor: str) -> None:
    """End a leave now (the person is back, or the leave is withdrawn)."""
    now = now_ts()
    async with db.transaction() as tx:
        leave = await get_leave(tx, leave_id)
        if leave.state.value not in _USABLE:
            raise InvalidChangeError("leave", leave_id, "leave_not_active")
        await tx.execute(
            "UPDATE leaves SET state = ?, cancelled_at = ?, "
            "ends_at = CASE WHEN ends_at > ? THEN ? ELSE ends_at END WHERE id = ?",
            (LeaveState.ENDED.value, now, now, now, leave_id),
        )
        await audit(tx, actor, "leave.end", f"household:{leave.household_id}", f"leave:{leave_id}")


async def cancel_leave(db: Database, leave_id: int, *, actor: str) -> None:
    """Withdraw a leave that was not used yet."""
    async with db.transaction() as tx:
        leave = await get_leave(tx, leave_id)
        changed = await tx.execute(
            "UPDATE leaves SET state = ?, cancelled_at = ? WHERE id = ? AND state = ?",
            (LeaveState.CANCELLED.value, now_ts(), leave_id, LeaveState.GRANTED.value),
        )
        if changed != 1:
            raise InvalidChangeError("leave", leave_id, "leave_in_use")
        await audit(tx, actor, "leave.cancel", f"household:{leave.household_id}",
                    f"leave:{leave_id}")


async def active_leave(tx: Transaction, household_id: int, at: str) -> Row | None:
    """The usable leave whose window contains ``at`` (stored time), if any."""
    return await tx.fetch_one(
        "SELECT * FROM leaves WHERE household_id = ? AND starts_at <= ? AND ends_at > ? "
        "AND state IN (?, ?, ?) ORDER BY starts_at DESC LIMIT 1",
        (household_id, at, at, *_USABLE),
    )


async def leave_overlapping(tx: Transaction, household_id: int, start: str,
                            end: str) -> Row | None:
    """A leave of the household in force at some time between ``start`` and ``end`` (stored
    times): its window overlaps them and it was not cancelled (an ended leave's window ends
    when it was ended; an overdue one's was in force until its end), if any."""
    return await tx.fetch_one(
        "SELECT * FROM leaves WHERE household_id = ? AND starts_at < ? AND ends_at > ? "
        "AND state != ? ORDER BY starts_at DESC, id DESC LIMIT 1",
        (household_id, end, start, LeaveState.CANCELLED.value),
    )

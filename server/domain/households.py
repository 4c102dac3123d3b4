"""Households under home quarantine: who lives there, where, and for how long.

A household with a quarantine period is *armed* exactly during the period
(the schedule loop in :mod:`server.jobs.schedule` keeps ``armed`` and the devices'
retained arm/disarm commands in line with it). A household without a period
keeps whatever ``armed`` was set by hand. Ending a quarantine early is an
audited action that disarms at once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ground.timeutil import now_ts, to_ts
from server.clock import Clock, SystemClock
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import dumps, fetch_required, loads_list, ts_or_none, when
from server.domain.errors import InvalidChangeError
from server.domain.people import get_grid, get_worker
from server.domain.releases import ReleaseContext, ReleaseOutcome, record_release

__all__ = [
    "Household",
    "HouseholdIn",
    "HouseholdUpdate",
    "add_household",
    "add_household_tx",
    "end_quarantine_early",
    "get_household",
    "in_period",
    "list_households",
    "set_desired_arm_state",
    "update_household",
]


class HouseholdIn(BaseModel):
    """A new household."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200,
                      description="How workers call it (户主 or unit)")
    address: str = Field(min_length=1, max_length=500)
    grid_id: int | None = None
    worker_id: int | None = Field(None, description="The grid worker who is notified first")
    members: list[str] = Field(default_factory=list, max_length=30)
    quarantine_start: datetime | None = None
    quarantine_end: datetime | None = None
    notes: str | None = Field(None, max_length=2000)
    armed: bool = Field(True, description="Only used when there is no quarantine period")
    building: str | None = Field(None, max_length=200, description="Building (for grouping "
                                 "devices that go offline together)")

    @model_validator(mode="after")
    def _period(self) -> HouseholdIn:
        _check_period(self.quarantine_start, self.quarantine_end)
        return self


class HouseholdUpdate(BaseModel):
    """Fields of a household to change (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    address: str | None = Field(None, min_length=1, max_length=500)
    grid_id: int | None = None
    worker_id: int | None = None
    members: list[str] | None = Field(None, max_length=30)
    quarantine_start: datetime | None = None
    quarantine_end: datetime | None = None
    notes: str | None = Field(None, max_length=2000)
    armed: bool | None = Field(None, description="Arm or disarm by hand (only without a period)")
    building: str | None = Field(None, max_length=200)


class Household(BaseModel):
    """A household as stored."""

    id: int
    name: str
    address: str
    grid_id: int | None
    worker_id: int | None
    members: list[str]
    quarantine_start: datetime | None
    quarantine_end: datetime | None
    notes: str | None
    armed: bool
    ended_early_at: datetime | None
    purged_at: datetime | None
    created_at: datetime
    building: str | None = None
    devices: list[str] = Field(default_factory=list, description="Devices assigned now")

    @classmethod
    def from_row(cls, row: Row, devices: list[str] | None = None) -> Household:
        """Build from a ``households`` row."""
        return cls(
            id=int(row["id"]), name=row["name"], address=row["address"],
            grid_id=_int(row["grid_id"]), worker_id=_int(row["worker_id"]),
            members=[str(m) for m in loads_list(row["members"])],
            quarantine_start=when(row["quarantine_start"]),
            quarantine_end=when(row["quarantine_end"]), notes=row["notes"],
            armed=bool(row["armed"]), ended_early_at=when(row["ended_early_at"]),
            purged_at=when(row["purged_at"]), created_at=when(row["created_at"]),
            building=row.get("building"), devices=devices or [],
        )


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _check_period(start: datetime | None, end: datetime | None) -> None:
    if (start is None) != (end is None):
        raise ValueError("quarantine needs both a start and an end")
    if start is not None and end is not None:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("quarantine times need a time zone")
        if end <= start:
            raise ValueError("quarantine must end after it starts")


def in_period(start: str | None, end: str | None, now: str) -> bool | None:
    """Whether ``now`` is inside the stored period; None when there is no period."""
    if start is None or end is None:
        return None
    return start <= now < end


async def set_desired_arm_state(tx: Transaction, household_id: int, armed: bool) -> int:
    """Set ``armed`` and queue the matching retained command for the household's devices.

    The command is published by the schedule loop (``arm_published_at`` NULL =
    not yet sent), so a crash between this commit and the publish only delays
    it. Returns how many devices got a new command.
    """
    await tx.execute("UPDATE households SET armed = ?, updated_at = ? WHERE id = ?",
                     (int(armed), now_ts(), household_id))
    command = "arm" if armed else "disarm"
    return await tx.execute(
        "UPDATE devices SET arm_command = ?, arm_command_at = ?, arm_published_at = NULL "
        "WHERE household_id = ? AND (arm_command IS NULL OR arm_command != ?)",
        (command, now_ts(), household_id, command),
    )


async def _check_refs(tx: Transaction, grid_id: int | None, worker_id: int | None) -> None:
    if grid_id is not None:
        await get_grid(tx, grid_id)
    if worker_id is not None:
        await get_worker(tx, worker_id)


async def add_household(
    db: Database, household: HouseholdIn, *, actor: str, clock: Clock | None = None
) -> int:
    """Create a household; return the id. Armed now if its period has begun."""
    async with db.transaction() as tx:
        return await add_household_tx(tx, household, actor=actor, clock=clock)


async def add_household_tx(
    tx: Transaction, household: HouseholdIn, *, actor: str, clock: Clock | None = None
) -> int:
    """:func:`add_household` inside the caller's transaction (CSV import)."""
    await _check_refs(tx, household.grid_id, household.worker_id)
    start, end = ts_or_none(household.quarantine_start), ts_or_none(household.quarantine_end)
    now = to_ts((clock or SystemClock()).now())
    armed = in_period(start, end, now)
    row = await tx.fetch_one(
        "INSERT INTO households (name, address, worker_id, grid_id, members, quarantine_start, "
        "quarantine_end, notes, armed, created_at, updated_at, building) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (household.name, household.address, household.worker_id, household.grid_id,
         dumps(household.members), start, end, household.notes,
         int(household.armed if armed is None else armed), now_ts(), now_ts(),
         household.building),
    )
    assert row is not None
    await audit(tx, actor, "household.add", f"household:{row['id']}", household.name)
    return int(row["id"])


async def _devices_of(
    conn: Database | Transaction, household_ids: list[int]
) -> dict[int, list[str]]:
    if not household_ids:
        return {}
    marks = ",".join("?" for _ in household_ids)
    rows = await conn.fetch_all(
        f"SELECT device_id, household_id FROM devices WHERE household_id IN ({marks}) "  # noqa: S608
        "ORDER BY device_id", household_ids,
    )
    out: dict[int, list[str]] = {}
    for r in rows:
        out.setdefault(int(r["household_id"]), []).append(r["device_id"])
    return out


async def get_household(conn: Database | Transaction, household_id: int) -> Household:
    """One household with its current devices (:class:`NotFoundError` if none)."""
    row = await fetch_required(conn, "household", household_id,
                               "SELECT * FROM households WHERE id = ?", (household_id,))
    devices = await _devices_of(conn, [household_id])
    return Household.from_row(row, devices.get(household_id))


async def list_households(
    db: Database, *, grid_id: int | None = None, worker_id: int | None = None,
    armed: bool | None = None, include_purged: bool = False,
) -> list[Household]:
    """Households, filtered by grid, worker and armed state, by id."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if grid_id is not None:
        where.append("grid_id = ?")
        params.append(grid_id)
    if worker_id is not None:
        where.append("worker_id = ?")
        params.append(worker_id)
    if armed is not None:
        where.append("armed = ?")
        params.append(int(armed))
    if not include_purged:
        where.append("purged_at IS NULL")
    rows = await db.fetch_all(
        f"SELECT * FROM households WHERE {' AND '.join(where)} ORDER BY id", params,  # noqa: S608
    )
    devices = await _devices_of(db, [int(r["id"]) for r in rows])
    return [Household.from_row(r, devices.get(int(r["id"]))) for r in rows]


async def update_household(
    db: Database, household_id: int, change: HouseholdUpdate, *, actor: str,
    clock: Clock | None = None,
) -> Household:
    """Change some fields; a changed period re-arms or disarms at once."""
    fields = change.model_dump(exclude_none=True)
    by_hand = fields.pop("armed", None)
    async with db.transaction() as tx:
        current = await get_household(tx, household_id)
        if current.purged_at is not None:
            raise InvalidChangeError("household", household_id, "purged")
        if by_hand is not None and (current.quarantine_start is not None
                                    or "quarantine_start" in fields):
            raise InvalidChangeError("household", household_id, "armed_by_schedule",
                                     "its quarantine period decides; end it early instead")
        await _check_refs(tx, fields.get("grid_id"), fields.get("worker_id"))
        start = fields.get("quarantine_start", current.quarantine_start)
        end = fields.get("quarantine_end", current.quarantine_end)
        try:
            _check_period(start, end)
        except ValueError as exc:
            raise InvalidChangeError("household", household_id, "period", str(exc)) from None
        for key in ("quarantine_start", "quarantine_end"):
            if key in fields:
                fields[key] = to_ts(fields[key])
        if "members" in fields:
            fields["members"] = dumps(fields["members"])
        if fields:
            sets = ", ".join(f"{name} = ?" for name in fields)
            await tx.execute(
                f"UPDATE households SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 - model fields
                (*fields.values(), now_ts(), household_id),
            )
            await audit(tx, actor, "household.update", f"household:{household_id}",
                        ", ".join(fields))
        armed = in_period(ts_or_none(start), ts_or_none(end), to_ts((clock or SystemClock()).now()))
        if armed is None:
            armed = by_hand
        if armed is not None and armed != current.armed:
            await set_desired_arm_state(tx, household_id, armed)
            await audit(tx, actor, "household.arm" if armed else "household.disarm",
                        f"household:{household_id}", "by hand" if by_hand is not None
                        else "quarantine period changed")
        return await get_household(tx, household_id)


async def end_quarantine_early(
    db: Database, household_id: int, *, actor: str, reason: str, clock: Clock | None = None,
    outcome: ReleaseOutcome = ReleaseOutcome.OTHER, release: ReleaseContext | None = None,
) -> Household:
    """End the household's quarantine now: disarm its devices, audit who and why.

    Writes the release record (``outcome``, ``reason`` as its note), tells the
    worker and starts the retention clock (:mod:`server.domain.releases`).
    """
    if not reason.strip():
        raise InvalidChangeError("household", household_id, "reason_required")
    now = to_ts((clock or SystemClock()).now())
    async with db.transaction() as tx:
        current = await get_household(tx, household_id)
        end = ts_or_none(current.quarantine_end)
        if current.purged_at is not None or (end is not None and end <= now):
            raise InvalidChangeError("household", household_id, "not_in_quarantine")
        start = ts_or_none(current.quarantine_start) or now
        await tx.execute(
            "UPDATE households SET quarantine_start = ?, quarantine_end = ?, ended_early_at = ?, "
            "updated_at = ? WHERE id = ?",
            (min(start, now), now, now, now_ts(), household_id),
        )
        await set_desired_arm_state(tx, household_id, False)
        await audit(tx, actor, "household.end_quarantine_early", f"household:{household_id}",
                    f"planned end {end}; {reason}"[:2000])
        await record_release(tx, household_id, actor=actor, outcome=outcome,
                             note=reason.strip()[:2000], at=now, planned_end=end,
                             context=release or ReleaseContext())
        return await get_household(tx, household_id)

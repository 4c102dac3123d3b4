"""The per-grid duty roster: who is on shift when, and who backs them up.

A shift belongs to a grid and names a worker, an optional backup worker, the
ISO weekdays it starts on (``12345`` = Monday to Friday) and its local start
and end times (``08:00``-``20:00``; an end at or before the start runs past
midnight, so ``20:00``-``08:00`` is a night shift and ``08:00``-``08:00`` a
whole day). Times are in the server's time zone (``notify.timezone``).

:func:`first_responders` is what the escalation ladder asks when an incident's
first alert is queued: the household's assigned worker when they are on shift
(or when the grid keeps no roster), else the grid's on-duty worker, each with
their shift's backup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ground.timeutil import now_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import fetch_required, when
from server.domain.errors import InvalidChangeError

__all__ = [
    "Responders",
    "Shift",
    "ShiftIn",
    "add_shift",
    "covers",
    "first_responders",
    "list_shifts",
    "on_duty",
    "remove_shift",
]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _check_days(value: str) -> str:
    days = "".join(sorted(set(value.replace(",", "").replace(" ", ""))))
    if not days or any(d not in "1234567" for d in days):
        raise ValueError("days are ISO weekday digits 1 (Monday) to 7 (Sunday), e.g. 12345")
    return days


def _check_hhmm(value: str) -> str:
    value = value.strip()
    if len(value) == 4 and value[1] == ":":
        value = "0" + value
    if not _HHMM.match(value):
        raise ValueError(f"not a time of day (HH:MM): {value!r}")
    return value


class ShiftIn(BaseModel):
    """A new shift."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    grid_id: int
    worker_id: int = Field(description="Who is on duty")
    backup_id: int | None = Field(None, description="Who is told when they do not respond")
    days: str = Field("1234567", description="ISO weekdays the shift starts on")
    starts: str = Field(description="Local start time HH:MM")
    ends: str = Field(description="Local end time HH:MM (at or before starts: next day)")
    notes: str | None = Field(None, max_length=500)

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        return _check_days(value)

    @field_validator("starts", "ends")
    @classmethod
    def _times(cls, value: str) -> str:
        return _check_hhmm(value)

    @model_validator(mode="after")
    def _distinct(self) -> ShiftIn:
        if self.backup_id is not None and self.backup_id == self.worker_id:
            raise ValueError("the backup must be somebody else")
        return self


class Shift(BaseModel):
    """A shift as stored, with the names of its people."""

    id: int
    grid_id: int
    grid: str | None = None
    worker_id: int
    worker: str | None = None
    backup_id: int | None
    backup: str | None = None
    days: str
    starts: str
    ends: str
    notes: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Shift:
        """Build from a row of :data:`_SELECT`."""
        return cls(
            id=int(row["id"]), grid_id=int(row["grid_id"]), grid=row.get("grid"),
            worker_id=int(row["worker_id"]), worker=row.get("worker"),
            backup_id=None if row["backup_id"] is None else int(row["backup_id"]),
            backup=row.get("backup"), days=row["days"], starts=row["starts"], ends=row["ends"],
            notes=row["notes"], created_at=when(row["created_at"]) or datetime.min,
        )


_SELECT = (
    "SELECT s.*, g.name AS grid, w.name AS worker, b.name AS backup FROM duty_shifts s "
    "JOIN grids g ON g.id = s.grid_id JOIN workers w ON w.id = s.worker_id "
    "LEFT JOIN workers b ON b.id = s.backup_id"
)


async def _check_worker(tx: Transaction, worker_id: int) -> None:
    row = await fetch_required(tx, "worker", worker_id,
                               "SELECT active FROM workers WHERE id = ?", (worker_id,))
    if not row["active"]:
        raise InvalidChangeError("worker", worker_id, "inactive")


async def add_shift(db: Database, shift: ShiftIn, *, actor: str) -> int:
    """Add a shift to a grid's roster (audited); return its id."""
    async with db.transaction() as tx:
        await fetch_required(tx, "grid", shift.grid_id, "SELECT id FROM grids WHERE id = ?",
                             (shift.grid_id,))
        await _check_worker(tx, shift.worker_id)
        if shift.backup_id is not None:
            await _check_worker(tx, shift.backup_id)
        row = await tx.fetch_one(
            "INSERT INTO duty_shifts (grid_id, worker_id, backup_id, days, starts, ends, notes, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (shift.grid_id, shift.worker_id, shift.backup_id, shift.days, shift.starts,
             shift.ends, shift.notes, now_ts()))
        assert row is not None
        await audit(tx, actor, "roster.add", f"shift:{row['id']}",
                    f"grid:{shift.grid_id} worker:{shift.worker_id} backup:{shift.backup_id} "
                    f"days {shift.days} {shift.starts}-{shift.ends}")
        return int(row["id"])


async def remove_shift(db: Database, shift_id: int, *, actor: str) -> None:
    """Take a shift off the roster (audited)."""
    async with db.transaction() as tx:
        row = await fetch_required(tx, "shift", shift_id, f"{_SELECT} WHERE s.id = ?",
                                   (shift_id,))
        await tx.execute("DELETE FROM duty_shifts WHERE id = ?", (shift_id,))
        await audit(tx, actor, "roster.remove", f"shift:{shift_id}",
                    f"grid:{row['grid_id']} worker:{row['worker_id']} backup:{row['backup_id']} "
                    f"days {row['days']} {row['starts']}-{row['ends']}")


async def list_shifts(db: Database | Transaction, grid_id: int | None = None) -> list[Shift]:
    """The roster (of one grid), by grid, start time and id."""
    where, params = ("WHERE s.grid_id = ?", (grid_id,)) if grid_id is not None else ("", ())
    rows = await db.fetch_all(f"{_SELECT} {where} ORDER BY g.name, s.starts, s.id", params)
    return [Shift.from_row(r) for r in rows]


def covers(shift: Shift, moment: datetime, timezone: str) -> bool:
    """Whether ``shift`` is on at ``moment`` (local weekday and time in ``timezone``)."""
    local = moment.astimezone(ZoneInfo(timezone))
    hm = local.strftime("%H:%M")
    today = str(local.isoweekday())
    yesterday = str((local - timedelta(days=1)).isoweekday())
    if shift.starts < shift.ends:
        return today in shift.days and shift.starts <= hm < shift.ends
    # Past midnight (or a whole day): the part after the start belongs to today's
    # shift, the part before the end to the shift that started yesterday.
    return ((today in shift.days and hm >= shift.starts)
            or (yesterday in shift.days and hm < shift.ends))


async def on_duty(db: Database | Transaction, grid_id: int, moment: datetime,
                  timezone: str) -> list[Shift]:
    """The grid's shifts that are on at ``moment``."""
    return [s for s in await list_shifts(db, grid_id) if covers(s, moment, timezone)]


@dataclass(frozen=True, slots=True)
class Responders:
    """Who gets an incident's first alert, and who is told next if they do not respond."""

    responder: int | None
    backup: int | None
    reason: str  # assigned | assigned_on_shift | on_duty | no_one_on_duty


async def first_responders(tx: Transaction, household_id: int, moment: datetime,
                           timezone: str) -> Responders:
    """The first responder and backup for a household's incident at ``moment``.

    * the grid keeps no roster: the assigned worker, no backup (as before rosters);
    * the assigned worker is on a shift now: them, with that shift's backup;
    * they are off shift (or no longer active): the grid's on-duty worker first
      (the earliest-starting shift on now), with that shift's backup;
    * nobody is on duty: the assigned worker, no backup (the supervisor still
      hears of it by escalation).
    """
    row = await tx.fetch_one(
        "SELECT h.worker_id, h.grid_id, w.active FROM households h "
        "LEFT JOIN workers w ON w.id = h.worker_id WHERE h.id = ?", (household_id,))
    if row is None:
        return Responders(None, None, "assigned")
    assigned = None if row["worker_id"] is None else int(row["worker_id"])
    if row["grid_id"] is None:
        return Responders(assigned, None, "assigned")
    shifts = await list_shifts(tx, int(row["grid_id"]))
    if not shifts:
        return Responders(assigned, None, "assigned")
    active = {int(r["id"]) for r in await tx.fetch_all("SELECT id FROM workers WHERE active = 1")}
    now_on = [s for s in shifts if covers(s, moment, timezone) and s.worker_id in active]
    for shift in now_on:
        if assigned is not None and shift.worker_id == assigned and row["active"]:
            return Responders(assigned, _backup(shift, active), "assigned_on_shift")
    if now_on:
        shift = now_on[0]
        return Responders(shift.worker_id, _backup(shift, active), "on_duty")
    return Responders(assigned, None, "no_one_on_duty")


def _backup(shift: Shift, active: set[int]) -> int | None:
    return shift.backup_id if shift.backup_id in active else None

"""Daily follow-ups recorded by grid workers: temperature per member, symptoms, a note."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.timeutil import now_ts
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.common import dumps, fetch_required, loads_dict, when

__all__ = ["FollowUp", "FollowUpIn", "FollowUpUpdate", "list_followups", "record_followup",
           "update_followup"]

# Body temperatures outside this range are typing errors, not fevers.
_MIN_C, _MAX_C = 34.0, 43.0


def _check_temperatures(value: dict[str, float]) -> dict[str, float]:
    for member, celsius in value.items():
        if not member.strip():
            raise ValueError("a temperature needs the member's name")
        if not _MIN_C <= celsius <= _MAX_C:
            raise ValueError(f"temperature {celsius} of {member} is not a body temperature "
                             f"({_MIN_C}-{_MAX_C} °C)")
    return value


class FollowUpIn(BaseModel):
    """One day's follow-up of a household."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    household_id: int
    day: date
    temperatures: dict[str, float] = Field(default_factory=dict, description="member -> °C")
    symptoms: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=2000)

    _temps = field_validator("temperatures")(_check_temperatures)


class FollowUpUpdate(BaseModel):
    """Corrections to a follow-up (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    temperatures: dict[str, float] | None = None
    symptoms: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=2000)

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else _check_temperatures(value)


class FollowUp(BaseModel):
    """A follow-up as stored."""

    id: int
    household_id: int
    day: date
    recorded_by: str
    recorded_at: datetime
    temperatures: dict[str, float]
    symptoms: str | None
    note: str | None

    @classmethod
    def from_row(cls, row: Row) -> FollowUp:
        """Build from a ``followups`` row."""
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            day=date.fromisoformat(row["day"]), recorded_by=row["recorded_by"],
            recorded_at=when(row["recorded_at"]),
            temperatures={k: float(v) for k, v in loads_dict(row["temperatures"]).items()},
            symptoms=row["symptoms"], note=row["note"],
        )


async def record_followup(db: Database, followup: FollowUpIn, *, actor: str) -> int:
    """Record a follow-up; return its id."""
    async with db.transaction() as tx:
        await fetch_required(tx, "household", followup.household_id,
                             "SELECT id FROM households WHERE id = ?", (followup.household_id,))
        row = await tx.fetch_one(
            "INSERT INTO followups (household_id, day, recorded_by, recorded_at, temperatures, "
            "symptoms, note) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (followup.household_id, followup.day.isoformat(), actor, now_ts(),
             dumps(followup.temperatures), followup.symptoms, followup.note),
        )
        assert row is not None
        await audit(tx, actor, "followup.record", f"household:{followup.household_id}",
                    f"followup:{row['id']} {followup.day.isoformat()}")
        return int(row["id"])


async def update_followup(
    db: Database, followup_id: int, change: FollowUpUpdate, *, actor: str
) -> FollowUp:
    """Correct a follow-up."""
    async with db.transaction() as tx:
        row = await fetch_required(tx, "follow-up", followup_id,
                                   "SELECT * FROM followups WHERE id = ?", (followup_id,))
        current = FollowUp.from_row(row)
        temperatures = current.temperatures if change.temperatures is None else change.temperatures
        await tx.execute(
            "UPDATE followups SET temperatures = ?, symptoms = ?, note = ? WHERE id = ?",
            (dumps(temperatures), change.symptoms if change.symptoms is not None
             else current.symptoms, change.note if change.note is not None else current.note,
             followup_id),
        )
        await audit(tx, actor, "followup.update", f"household:{current.household_id}",
                    f"followup:{followup_id}")
        row = await fetch_required(tx, "follow-up", followup_id,
                                   "SELECT * FROM followups WHERE id = ?", (followup_id,))
        return FollowUp.from_row(row)


async def list_followups(
    db: Database, *, household_id: int | None = None, day_from: date | None = None,
    day_to: date | None = None,
) -> list[FollowUp]:
    """Follow-ups, newest day first."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if household_id is not None:
        where.append("household_id = ?")
        params.append(household_id)
    if day_from is not None:
        where.append("day >= ?")
        params.append(day_from.isoformat())
    if day_to is not None:
        where.append("day <= ?")
        params.append(day_to.isoformat())
    rows = await db.fetch_all(
        f"SELECT * FROM followups WHERE {' AND '.join(where)} ORDER BY day DESC, id DESC",  # noqa: S608
        params,
    )
    return [FollowUp.from_row(r) for r in rows]

"""Expected visits: a worker registers who comes (organisation, purpose) in a time window.

Inside a registered window on an armed household (:mod:`server.domain.rules`):

* a ``handover`` or an ``entry`` is logged against the visit as *planned*
  (``visit_events``), never an incident; entries make the visit ``inside``;
* an ``exit`` while the visit has more entries than exits is the visitor
  leaving (planned, counted); once every visitor who came in went out the
  visit is ``left``. An exit beyond that (more exits than entries) is a
  breach as usual: the camera cannot tell who walked out, the counts can;
* a visitor inside longer than the visit's stay limit (``[visits]
  stay_limit_min`` unless the registration set its own) opens one
  ``visitor_overstay`` incident carrying the registration
  (:mod:`server.jobs.visit_watch`).

Registering and cancelling are audited.
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
    "Visit",
    "VisitIn",
    "VisitState",
    "cancel_visit",
    "get_visit",
    "list_visits",
    "planned_entry",
    "planned_exit",
    "planned_handover",
    "register_visit",
    "registration_text",
]


class VisitState(StrEnum):
    """Where an expected visit stands."""

    EXPECTED = "expected"
    INSIDE = "inside"
    LEFT = "left"
    CANCELLED = "cancelled"


class VisitIn(BaseModel):
    """A visit to register."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    household_id: int
    starts_at: datetime
    ends_at: datetime
    visitor: str = Field(min_length=1, max_length=200, description="Who comes (name or team)")
    organisation: str | None = Field(None, max_length=200)
    purpose: str = Field(min_length=1, max_length=500)
    stay_limit_min: int | None = Field(
        None, ge=1, le=24 * 60, description="Minutes a visitor may stay inside "
        "(default: [visits] stay_limit_min)")

    @model_validator(mode="after")
    def _window(self) -> VisitIn:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("visit times need a time zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("a visit must end after it starts")
        return self


class Visit(BaseModel):
    """A visit as stored."""

    id: int
    household_id: int
    starts_at: datetime
    ends_at: datetime
    visitor: str
    organisation: str | None
    purpose: str
    stay_limit_min: int | None
    registered_by: str
    registered_at: datetime
    state: VisitState
    entries: int
    exits: int
    handovers: int
    inside_since: datetime | None
    incident_id: int | None

    @classmethod
    def from_row(cls, row: Row) -> Visit:
        """Build from a ``visits`` row."""
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            starts_at=when(row["starts_at"]), ends_at=when(row["ends_at"]),
            visitor=row["visitor"], organisation=row["organisation"], purpose=row["purpose"],
            stay_limit_min=None if row["stay_limit_s"] is None
            else int(row["stay_limit_s"]) // 60,
            registered_by=row["registered_by"], registered_at=when(row["registered_at"]),
            state=VisitState(row["state"]), entries=int(row["entries"]),
            exits=int(row["exits"]), handovers=int(row["handovers"]),
            inside_since=when(row["inside_since"]),
            incident_id=None if row["incident_id"] is None else int(row["incident_id"]),
        )


def registration_text(row: Row) -> str:
    """The registration in one line (kept on the overstay incident, quoted in its alert)."""
    who = row["visitor"] + (f" ({row['organisation']})" if row["organisation"] else "")
    return f"{who}: {row['purpose']}"


async def register_visit(db: Database, visit: VisitIn, *, actor: str) -> int:
    """Register an expected visit; return its id."""
    async with db.transaction() as tx:
        household = await fetch_required(tx, "household", visit.household_id,
                                         "SELECT id, purged_at FROM households WHERE id = ?",
                                         (visit.household_id,))
        if household["purged_at"] is not None:
            raise InvalidChangeError("household", visit.household_id, "purged")
        row = await tx.fetch_one(
            "INSERT INTO visits (household_id, starts_at, ends_at, visitor, organisation, "
            "purpose, stay_limit_s, registered_by, registered_at, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (visit.household_id, to_ts(visit.starts_at), to_ts(visit.ends_at), visit.visitor,
             visit.organisation or None, visit.purpose,
             None if visit.stay_limit_min is None else visit.stay_limit_min * 60,
             actor, now_ts(), VisitState.EXPECTED.value))
        assert row is not None
        await audit(tx, actor, "visit.register", f"household:{visit.household_id}",
                    f"visit:{row['id']} {to_ts(visit.starts_at)}..{to_ts(visit.ends_at)} "
                    f"{visit.visitor}; {visit.purpose}"[:2000])
        return int(row["id"])


async def get_visit(conn: Database | Transaction, visit_id: int) -> Visit:
    """One visit (:class:`NotFoundError` if none)."""
    return Visit.from_row(await fetch_required(conn, "visit", visit_id,
                                               "SELECT * FROM visits WHERE id = ?", (visit_id,)))


async def list_visits(db: Database, *, household_id: int) -> list[Visit]:
    """A household's visits, latest window first."""
    rows = await db.fetch_all(
        "SELECT * FROM visits WHERE household_id = ? ORDER BY starts_at DESC, id DESC",
        (household_id,))
    return [Visit.from_row(r) for r in rows]


async def cancel_visit(db: Database, visit_id: int, *, actor: str) -> None:
    """Withdraw a visit nobody came in for yet."""
    async with db.transaction() as tx:
        visit = await get_visit(tx, visit_id)
        changed = await tx.execute(
            "UPDATE visits SET state = ?, cancelled_at = ?, cancelled_by = ? "
            "WHERE id = ? AND state = ?",
            (VisitState.CANCELLED.value, now_ts(), actor, visit_id, VisitState.EXPECTED.value))
        if changed != 1:
            raise InvalidChangeError("visit", visit_id, "visit_in_use")
        await audit(tx, actor, "visit.cancel", f"household:{visit.household_id}",
                    f"visit:{visit_id}")


async def _link(tx: Transaction, visit_id: int, event_row_id: int, role: str) -> None:
    await tx.execute(
        "INSERT INTO visit_events (visit_id, event_row_id, role) VALUES (?, ?, ?) "
        "ON CONFLICT (visit_id, event_row_id) DO NOTHING", (visit_id, event_row_id, role))


async def _in_window(tx: Transaction, household_id: int, at: str) -> Row | None:
    return await tx.fetch_one(
        "SELECT * FROM visits WHERE household_id = ? AND starts_at <= ? AND ends_at > ? "
        "AND state != ? ORDER BY starts_at DESC, id DESC LIMIT 1",
        (household_id, at, at, VisitState.CANCELLED.value))


async def planned_handover(tx: Transaction, household_id: int, event_row_id: int,
                           at: str) -> int | None:
    """Log a handover inside a visit window as planned; the visit's id, or None."""
    visit = await _in_window(tx, household_id, at)
    if visit is None:
        return None
    await tx.execute("UPDATE visits SET handovers = handovers + 1 WHERE id = ?", (visit["id"],))
    await _link(tx, int(visit["id"]), event_row_id, "handover")
    return int(visit["id"])


async def planned_entry(tx: Transaction, household_id: int, event_row_id: int,
                        at: str) -> int | None:
    """Log an entry inside a visit window as a visitor coming in; the visit's id, or None."""
    visit = await _in_window(tx, household_id, at)
    if visit is None:
        return None
    # inside_since: when the earliest visitor still inside came in (set when none was).
    await tx.execute(
        "UPDATE visits SET entries = entries + 1, state = ?, "
        "inside_since = CASE WHEN entries = exits THEN ? ELSE inside_since END WHERE id = ?",
        (VisitState.INSIDE.value, at, visit["id"]))
    await _link(tx, int(visit["id"]), event_row_id, "entry")
    return int(visit["id"])


async def planned_exit(tx: Transaction, household_id: int, event_row_id: int,
                       at: str) -> int | None:
    """Log an exit as a registered visitor leaving, if one is inside; the visit's id, or None."""
    visit = await tx.fetch_one(
        "SELECT id, entries, exits, inside_since FROM visits WHERE household_id = ? AND state = ? "
        "AND entries > exits AND starts_at <= ? ORDER BY inside_since, id LIMIT 1",
        (household_id, VisitState.INSIDE.value, at))
    if visit is None:
        return None
    gone = int(visit["exits"]) + 1 >= int(visit["entries"])
    await tx.execute(
        "UPDATE visits SET exits = exits + 1, state = ?, inside_since = ? WHERE id = ?",
        (VisitState.LEFT.value if gone else VisitState.INSIDE.value,
         None if gone else visit["inside_since"], visit["id"]))
    await _link(tx, int(visit["id"]), event_row_id, "exit")
    return int(visit["id"])

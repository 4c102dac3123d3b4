"""Silencing a household: no notifications of device trouble for a while, with a reason.

A household in hospital, or whose device is known to be unplugged for
repairs, would otherwise page its grid worker every few minutes. A
supervisor (or the office by CLI) silences it with a reason and an expiry;
every silence and every lift is in the audit log, and the household page
shows it while it applies.

What a silence suppresses (the policy the dashboard and README state):

* **notifications** (the alert, and so its reminders, backup and escalation)
  of incidents about the *device*: ``device_offline`` and ``tamper``;
* with ``include_breaches``, also those about *people at the door*
  (``breach``, ``possible_breach``, ``overdue_return``, ``visitor``): for a
  household that is away (a hospital stay) where nobody should be answering
  the door. Without it, breaches still notify as usual.

It never suppresses *recording*: events are stored, incidents are opened
(marked with the silence in ``incidents.silence_id`` and an audit entry) and
shown on the dashboard, so nothing that happened while silenced is lost. A
silence ends at its expiry without anybody doing anything, or earlier when
lifted.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ground.timeutil import now_ts, to_ts, utcnow
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import fetch_required, when
from server.domain.errors import InvalidChangeError

__all__ = [
    "DEVICE_KINDS",
    "PEOPLE_KINDS",
    "Silence",
    "SilenceIn",
    "active_silence",
    "lift_silence",
    "list_silences",
    "silence_for_incident",
    "silence_household",
]

# Kinds a silence always covers, and those it covers only with include_breaches.
DEVICE_KINDS = frozenset({"device_offline", "tamper"})
PEOPLE_KINDS = frozenset({"breach", "possible_breach", "overdue_return", "visitor",
                          "visitor_overstay"})


class SilenceIn(BaseModel):
    """A new silence for a household."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    household_id: int
    reason: str = Field(min_length=1, max_length=500, description="Why (a hospital stay, ...)")
    until: datetime = Field(description="When it ends by itself")
    include_breaches: bool = Field(False, description="Silence breach alerts too (household away)")


class Silence(BaseModel):
    """A silence as stored."""

    id: int
    household_id: int
    household: str | None = None
    reason: str
    starts_at: datetime
    ends_at: datetime
    include_breaches: bool
    created_by: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    active: bool = False

    @classmethod
    def from_row(cls, row: Row, now: str) -> Silence:
        """Build from a ``household_silences`` row (``active`` as of ``now``)."""
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            household=row.get("household"), reason=row["reason"],
            starts_at=when(row["starts_at"]) or utcnow(), ends_at=when(row["ends_at"]) or utcnow(),
            include_breaches=bool(row["include_breaches"]), created_by=row["created_by"],
            created_at=when(row["created_at"]) or utcnow(), lifted_at=when(row["lifted_at"]),
            lifted_by=row["lifted_by"],
            active=row["lifted_at"] is None and row["starts_at"] <= now < row["ends_at"],
        )


_SELECT = ("SELECT s.*, h.name AS household FROM household_silences s "
           "JOIN households h ON h.id = s.household_id")


async def silence_household(db: Database, silence: SilenceIn, *, actor: str,
                            now: datetime | None = None) -> int:
    """Silence a household from now until ``silence.until`` (audited); return the id."""
    start = to_ts(now or utcnow())
    end = to_ts(silence.until)
    if end <= start:
        raise InvalidChangeError("household", silence.household_id, "silence_in_past")
    async with db.transaction() as tx:
        await fetch_required(tx, "household", silence.household_id,
                             "SELECT id FROM households WHERE id = ?", (silence.household_id,))
        row = await tx.fetch_one(
            "INSERT INTO household_silences (household_id, reason, starts_at, ends_at, "
            "include_breaches, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (silence.household_id, silence.reason, start, end, int(silence.include_breaches),
             actor, now_ts()))
        assert row is not None
        await audit(tx, actor, "household.silence", f"household:{silence.household_id}",
                    f"silence:{row['id']} until {end}"
                    f"{' incl. breaches' if silence.include_breaches else ''}: {silence.reason}")
        return int(row["id"])


async def lift_silence(db: Database, silence_id: int, *, actor: str) -> Silence:
    """End a silence now (audited); refused if it is already over."""
    now = now_ts()
    async with db.transaction() as tx:
        row = await fetch_required(tx, "silence", silence_id, f"{_SELECT} WHERE s.id = ?",
                                   (silence_id,))
        changed = await tx.execute(
            "UPDATE household_silences SET lifted_at = ?, lifted_by = ? WHERE id = ? "
            "AND lifted_at IS NULL AND ends_at > ?", (now, actor, silence_id, now))
        if not changed:
            raise InvalidChangeError("silence", silence_id, "silence_over")
        await audit(tx, actor, "household.unsilence", f"household:{row['household_id']}",
                    f"silence:{silence_id}")
        row = await fetch_required(tx, "silence", silence_id, f"{_SELECT} WHERE s.id = ?",
                                   (silence_id,))
        return Silence.from_row(row, now)


async def list_silences(db: Database | Transaction, *, household_id: int | None = None,
                        active_only: bool = False) -> list[Silence]:
    """Silences (of one household; only those applying now), newest first."""
    now = now_ts()
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if household_id is not None:
        where.append("s.household_id = ?")
        params.append(household_id)
    if active_only:
        where += ["s.lifted_at IS NULL", "s.starts_at <= ?", "s.ends_at > ?"]
        params += [now, now]
    rows = await db.fetch_all(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY s.id DESC", params)
    return [Silence.from_row(r, now) for r in rows]


async def active_silence(tx: Database | Transaction, household_id: int,
                         at: str | None = None) -> Row | None:
    """The household's silence applying at ``at`` (now), the latest-ending one, if any."""
    moment = at or now_ts()
    return await tx.fetch_one(
        "SELECT id, include_breaches, reason, ends_at FROM household_silences "
        "WHERE household_id = ? AND lifted_at IS NULL AND starts_at <= ? AND ends_at > ? "
        "ORDER BY ends_at DESC LIMIT 1", (household_id, moment, moment))


async def silence_for_incident(tx: Transaction, household_id: int, kind: str,
                               at: str | None = None) -> Row | None:
    """The silence that suppresses notifications of an incident of ``kind``, if any."""
    if kind not in DEVICE_KINDS and kind not in PEOPLE_KINDS:
        return None  # a grouped outage, a fever: never silenced per household
    silence = await active_silence(tx, household_id, at)
    if silence is None:
        return None
    if kind in PEOPLE_KINDS and not silence["include_breaches"]:
        return None
    return silence

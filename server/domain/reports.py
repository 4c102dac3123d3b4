"""The grid report (issue 19 item 5): one grid's days in figures, for supervisors.

:func:`build_grid_report` gathers, for the local days ``first_day`` ..
``first_day + days - 1`` (``days`` = 1: the daily report, 7: the weekly
summary): incidents opened (by kind and state, with response times),
follow-ups (households visited per day out of those in quarantine), fevers
(readings at or above the threshold), presence check-ins (asked, present,
missed) and monitoring coverage (:mod:`server.domain.coverage`). The
printable page (server/web) and the PDF (server/notify/report_pdf.py) both
render this one model, so they show the same figures.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from ground.timeutil import from_ts, to_ts
from server.db.base import Database
from server.domain.coverage import day_window, household_coverage
from server.domain.errors import NotFoundError

__all__ = [
    "CoverageLine",
    "FeverLine",
    "GridReport",
    "IncidentLine",
    "ReportKind",
    "build_grid_report",
]


class ReportKind(StrEnum):
    """Daily report or weekly summary (keys of ``report.kind.*``)."""

    DAILY = "daily"
    WEEKLY = "weekly"

    @property
    def days(self) -> int:
        """How many days the report covers."""
        return 1 if self is ReportKind.DAILY else 7


class IncidentLine(BaseModel):
    """One incident opened in the window."""

    id: int
    household: str
    kind: str
    state: str
    opened_at: datetime
    response_s: float | None  # opened -> acknowledged


class FeverLine(BaseModel):
    """One reading at or above the fever threshold."""

    household: str
    member: str
    day: str
    temperature_c: float


class CoverageLine(BaseModel):
    """One household's monitoring coverage over the window."""

    household_id: int
    household: str
    armed_s: float
    blind_s: float
    share: float | None
    spells: int
    parts: list[str]  # which parts were blind, in order of first appearance


class GridReport(BaseModel):
    """Everything a grid report shows."""

    grid_id: int
    grid: str
    kind: ReportKind
    first_day: date
    days: int
    generated_at: datetime
    fever_c: float
    incidents: list[IncidentLine]
    incidents_by_kind: dict[str, int]
    open_incidents: int  # of those opened in the window, still not resolved
    median_response_s: float | None
    households: int  # households of the grid in quarantine (armed) at generation
    followups: int  # follow-up records in the window
    visited: int  # (household, day) pairs with a follow-up
    expected_visits: int  # households x days
    fevers: list[FeverLine]
    checkins_asked: int = 0  # presence check-ins asked in the window (one per device)
    checkins_present: int = 0
    checkins_missed: int = 0  # absent, left or unanswered (not an allowed or withdrawn exit)
    checkins_on_leave: int = 0  # not present, during a permitted leave: not missed
    coverage: list[CoverageLine]
    coverage_armed_s: float
    coverage_blind_s: float

    @property
    def last_day(self) -> date:
        """The window's last day."""
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def coverage_share(self) -> float | None:
        """Verified share of the grid's armed time (None if nothing was armed)."""
        if self.coverage_armed_s <= 0:
            return None
        return max(0.0, self.coverage_armed_s - self.coverage_blind_s) / self.coverage_armed_s


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def build_grid_report(
    db: Database, grid_id: int, first_day: date, kind: ReportKind, *, zone: str,
    fever_c: float, now: datetime,
) -> GridReport:
    """The report of grid ``grid_id`` for ``kind.days`` local days from ``first_day``."""
    grid = await db.fetch_one("SELECT id, name FROM grids WHERE id = ?", (grid_id,))
    if grid is None:
        raise NotFoundError("grid", grid_id)
    days = kind.days
    start, _ = day_window(first_day, zone)
    _, end = day_window(first_day + timedelta(days=days - 1), zone)
    homes = await db.fetch_all(
        "SELECT id, name, armed FROM households WHERE grid_id = ? AND purged_at IS NULL "
        "ORDER BY name, id", (grid_id,))
    ids = [int(h["id"]) for h in homes]
    names = {int(h["id"]): str(h["name"]) for h in homes}

    rows = await db.fetch_all(
        "SELECT i.id, i.kind, i.state, i.opened_at, i.acknowledged_at, h.name AS household "
        "FROM incidents i JOIN households h ON h.id = i.household_id "
        "WHERE h.grid_id = ? AND i.opened_at >= ? AND i.opened_at < ? "
        "AND i.state != 'grouped' ORDER BY i.opened_at, i.id",
        (grid_id, to_ts(start), to_ts(end)))
    incidents = []
    by_kind: dict[str, int] = {}
    for row in rows:
        opened = from_ts(row["opened_at"])
        acked = row["acknowledged_at"]
        incidents.append(IncidentLine(
            id=int(row["id"]), household=str(row["household"]), kind=str(row["kind"]),
            state=str(row["state"]), opened_at=opened,
            response_s=(from_ts(acked) - opened).total_seconds() if acked else None))
        by_kind[str(row["kind"])] = by_kind.get(str(row["kind"]), 0) + 1

    day_keys = [(first_day + timedelta(days=n)).isoformat() for n in range(days)]
    followups = await db.fetch_all(
        "SELECT f.household_id, f.day, f.temperatures, h.name AS household FROM followups f "
        "JOIN households h ON h.id = f.household_id WHERE h.grid_id = ? AND f.day >= ? "
        "AND f.day <= ? ORDER BY f.day, h.name, f.id", (grid_id, day_keys[0], day_keys[-1]))
    fevers = []
    for row in followups:
        try:
            readings = json.loads(str(row["temperatures"])) or {}
        except ValueError:
            readings = {}
        for member, value in readings.items():
            if isinstance(value, int | float) and value >= fever_c:
                fevers.append(FeverLine(household=str(row["household"]), member=str(member),
                                        day=str(row["day"]), temperature_c=float(value)))

    found = await household_coverage(db, ids, start, end, now)
    coverage = []
    for household_id in ids:
        cov = found[household_id]
        if cov.armed_s <= 0:
            continue
        parts: list[str] = []
        for spell in cov.spells:
            if spell.part not in parts:
                parts.append(spell.part)
        coverage.append(CoverageLine(
            household_id=household_id, household=names[household_id], armed_s=cov.armed_s,
            blind_s=cov.blind_s, share=cov.share, spells=len(cov.spells), parts=parts))
    checkins = await db.fetch_all(
        "SELECT c.outcome, c.context FROM checkins c JOIN households h ON h.id = c.household_id "
        "WHERE h.grid_id = ? AND c.requested_at >= ? AND c.requested_at < ?",
        (grid_id, to_ts(start), to_ts(end)))
    armed_homes = sum(1 for h in homes if h["armed"])
    return GridReport(
        grid_id=grid_id, grid=str(grid["name"]), kind=kind, first_day=first_day, days=days,
        generated_at=now, fever_c=fever_c, incidents=incidents, incidents_by_kind=by_kind,
        open_incidents=sum(1 for i in incidents if i.state != "resolved"),
        median_response_s=_median([i.response_s for i in incidents if i.response_s is not None]),
        households=armed_homes, followups=len(followups),
        visited=len({(r["household_id"], r["day"]) for r in followups}),
        expected_visits=armed_homes * days, fevers=fevers, coverage=coverage,
        checkins_asked=len(checkins),
        checkins_present=sum(1 for c in checkins if c["outcome"] == "present"),
        checkins_missed=sum(1 for c in checkins
                            if c["outcome"] is not None and c["outcome"] != "present"
                            and c["context"] is None),
        checkins_on_leave=sum(1 for c in checkins
                              if c["outcome"] is not None and c["outcome"] != "present"
                              and c["context"] == "leave"),
        coverage_armed_s=sum(c.armed_s for c in coverage),
        coverage_blind_s=sum(c.blind_s for c in coverage))

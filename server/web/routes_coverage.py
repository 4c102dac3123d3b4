"""Monitoring coverage pages: a grid's households for a day (issue 19 item 4).

The household page shows its own day (routes_people.py); both read
:mod:`server.domain.coverage`, scoped like every household list.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import Response

from ground.timeutil import utcnow
from server.db.base import Row
from server.domain import people
from server.domain.coverage import Coverage, GridCoverage, day_window, household_coverage
from server.web.deps import CASEWORK, Db, Settings, csrf_protect, require
from server.web.render import render
from server.web.scope import household_scope
from server.web.users import User

__all__ = ["chosen_day", "coverage_of_day", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Casework = Annotated[User, Depends(require(*CASEWORK))]


def chosen_day(value: str | None, zone: str) -> date:
    """The ``day`` query parameter, else today in the dashboard's zone."""
    if value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise HTTPException(400, f"not a date: {value!r}") from None
    return datetime.now(ZoneInfo(zone)).date()


async def coverage_of_day(db: Db, household_ids: list[int], day: date,
                          zone: str) -> dict[int, Coverage]:
    """Each household's coverage on a local calendar day (up to now if it is today)."""
    start, end = day_window(day, zone)
    return await household_coverage(db, household_ids, start, end, utcnow())


@router.get("/coverage")
async def coverage_page(request: Request, db: Db, settings: Settings, user: Casework) -> Response:
    """Per grid and household: verified share of the day's armed time and its blind spells."""
    zone = settings.notify.timezone
    day = chosen_day(request.query_params.get("day"), zone)
    grid_param = request.query_params.get("grid") or ""
    scope, params = household_scope(user)
    where = [scope, "h.purged_at IS NULL"]
    if grid_param.isdigit():
        where.append("h.grid_id = ?")
        params = [*params, int(grid_param)]
    rows = await db.fetch_all(
        "SELECT h.id, h.name, h.address, h.grid_id, g.name AS grid FROM households h "  # noqa: S608
        f"LEFT JOIN grids g ON g.id = h.grid_id WHERE {' AND '.join(where)} "
        "ORDER BY g.name, h.name, h.id", params)
    found = await coverage_of_day(db, [int(r["id"]) for r in rows], day, zone)
    grids: dict[str, tuple[list[Row], GridCoverage]] = {}
    for row in rows:
        listed, total = grids.setdefault(str(row["grid"] or "—"), ([], GridCoverage([])))
        listed.append(row)
        total.households.append(found[int(row["id"])])
    return render(request, "coverage.html", user, day=day.isoformat(), grids=grids,
                  grid_choices=await people.list_grids(db), grid=grid_param,
                  tz=ZoneInfo(zone))

"""Read-only machine access with API tokens (issue 19, item 6): ``/api/share/...``.

``Authorization: Bearer dwt_...``; each endpoint needs its scope
(:class:`server.domain.api_tokens.Scope`), each use is audited and counted
against the token's budget per minute (429 with ``Retry-After`` beyond it).
No session, no CSRF: nothing here changes anything. The schema is in
:mod:`server.web.share_models` and in the OpenAPI document.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ground.timeutil import to_ts, utcnow
from server.db.base import Database
from server.domain.api_tokens import ApiToken, Scope, TokenRefusedError, use_token
from server.domain.common import loads_list
from server.web.deps import Db, Settings
from server.web.followups_view import readings
from server.web.share_models import (
    DayExport,
    ShareFollowUp,
    ShareHousehold,
    ShareIncident,
    ShareReading,
    ShareRelease,
    ShareVisit,
)

__all__ = ["TokenRefusedError", "refused", "router"]

router = APIRouter(prefix="/api/share", tags=["health office (API token)"])

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiToken",
                     description="An API token created by an admin (dwt_...)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Day = Annotated[date | None, Query(description="Local day (YYYY-MM-DD); default today")]

_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or an unknown, revoked or expired one"},
    403: {"description": "The token lacks this endpoint's scope"},
    429: {"description": "Over the token's requests per minute (see Retry-After)"},
}


def refused(exc: TokenRefusedError) -> JSONResponse:
    """The answer to a refused token (the app's handler)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(exc.retry_after_s, 1))
    return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)


async def _token(request: Request, db: Database, bearer: HTTPAuthorizationCredentials | None,
                 scope: Scope, per_minute: int) -> ApiToken:
    text = bearer.credentials if bearer is not None else None
    what = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return await use_token(db, text, scope, what=what, per_minute=per_minute)


def _bounds(day: date, zone: str) -> tuple[str, str]:
    start = datetime.combine(day, time.min, tzinfo=ZoneInfo(zone))
    return to_ts(start), to_ts(start + timedelta(days=1))


def _grid_filter(token: ApiToken) -> tuple[str, list[object]]:
    return ("h.grid_id = ?", [token.grid_id]) if token.grid_id is not None else ("1 = 1", [])


def _today(zone: str) -> date:
    return utcnow().astimezone(ZoneInfo(zone)).date()


async def _incidents(db: Database, token: ApiToken, day: date, zone: str) -> list[ShareIncident]:
    start, end = _bounds(day, zone)
    grid, params = _grid_filter(token)
    rows = await db.fetch_all(
        "SELECT i.id, i.household_id, g.name AS grid, i.kind, i.severity, i.state, "  # noqa: S608
        "i.opened_at, i.acknowledged_at, i.acknowledged_by, i.resolved_at, i.outcome "
        "FROM incidents i LEFT JOIN households h ON h.id = i.household_id "
        "LEFT JOIN grids g ON g.id = h.grid_id "
        f"WHERE i.opened_at >= ? AND i.opened_at < ? AND {grid} ORDER BY i.id",
        [start, end, *params])
    return [ShareIncident.model_validate(r) for r in rows]


async def _followups(db: Database, token: ApiToken, day: date,
                     threshold: float) -> list[ShareFollowUp]:
    grid, params = _grid_filter(token)
    rows = await db.fetch_all(
        "SELECT f.*, g.name AS grid FROM followups f "  # noqa: S608
        "JOIN households h ON h.id = f.household_id LEFT JOIN grids g ON g.id = h.grid_id "
        f"WHERE f.day = ? AND {grid} ORDER BY f.id", [day.isoformat(), *params])
    return [ShareFollowUp(
        id=int(r["id"]), household_id=int(r["household_id"]), grid=r["grid"], day=day,
        recorded_by=r["recorded_by"], recorded_at=r["recorded_at"],
        readings=[ShareReading(member=x["member"], temperature_c=x["celsius"], fever=x["fever"],
                               symptoms=x["symptoms"]) for x in readings(r, threshold)],
        household_symptoms=r["symptoms"], note=r["note"],
        fever_incident_id=r["fever_incident_id"]) for r in rows]


@router.get("/incidents", summary="Incidents opened on a day", responses=_REFUSED)
async def share_incidents(request: Request, db: Db, settings: Settings, bearer: Bearer,
                          day: Day = None) -> list[ShareIncident]:
    """Scope ``read:incidents``."""
    token = await _token(request, db, bearer, Scope.INCIDENTS, settings.share.requests_per_minute)
    zone = settings.notify.timezone
    return await _incidents(db, token, day or _today(zone), zone)


@router.get("/followups", summary="Follow-ups of a day", responses=_REFUSED)
async def share_followups(request: Request, db: Db, settings: Settings, bearer: Bearer,
                          day: Day = None) -> list[ShareFollowUp]:
    """Scope ``read:followups``: temperature and symptoms per member, fevers flagged."""
    token = await _token(request, db, bearer, Scope.FOLLOWUPS, settings.share.requests_per_minute)
    return await _followups(db, token, day or _today(settings.notify.timezone),
                            settings.followups.fever_c)


@router.get("/day/{day}", summary="A day's export", responses=_REFUSED)
async def share_day(request: Request, db: Db, settings: Settings, bearer: Bearer,
                    day: date) -> DayExport:
    """Scope ``read:export``: households, incidents, follow-ups, releases and visits of a day."""
    token = await _token(request, db, bearer, Scope.EXPORT, settings.share.requests_per_minute)
    zone = settings.notify.timezone
    start, end = _bounds(day, zone)
    grid, params = _grid_filter(token)
    households = await db.fetch_all(
        "SELECT h.*, g.name AS grid FROM households h "  # noqa: S608
        "LEFT JOIN grids g ON g.id = h.grid_id WHERE h.purged_at IS NULL AND "
        "((h.quarantine_start < ? AND h.quarantine_end > ?) OR (h.quarantine_start IS NULL "
        f"AND h.armed = 1)) AND {grid} ORDER BY h.id", [end, start, *params])
    releases = await db.fetch_all(
        "SELECT r.* FROM releases r JOIN households h ON h.id = r.household_id "  # noqa: S608
        f"WHERE r.released_at >= ? AND r.released_at < ? AND {grid} ORDER BY r.id",
        [start, end, *params])
    visits = await db.fetch_all(
        "SELECT v.* FROM visits v JOIN households h ON h.id = v.household_id "  # noqa: S608
        f"WHERE v.starts_at < ? AND v.ends_at > ? AND {grid} ORDER BY v.id",
        [end, start, *params])
    grid_name = None
    if token.grid_id is not None:
        row = await db.fetch_one("SELECT name FROM grids WHERE id = ?", (token.grid_id,))
        grid_name = None if row is None else str(row["name"])
    return DayExport(
        day=day, timezone=zone, generated_at=utcnow(), grid=grid_name,
        fever_threshold_c=settings.followups.fever_c,
        households=[ShareHousehold(
            id=int(h["id"]), name=h["name"], address=h["address"], grid=h["grid"],
            members=[str(m) for m in loads_list(h["members"])],
            quarantine_start=h["quarantine_start"], quarantine_end=h["quarantine_end"],
            armed=bool(h["armed"])) for h in households],
        incidents=await _incidents(db, token, day, zone),
        followups=await _followups(db, token, day, settings.followups.fever_c),
        releases=[ShareRelease.model_validate(r) for r in releases],
        visits=[ShareVisit(
            household_id=int(v["household_id"]), starts_at=v["starts_at"], ends_at=v["ends_at"],
            visitor=v["visitor"], organisation=v["organisation"], purpose=v["purpose"],
            state=v["state"], entries=int(v["entries"]), exits=int(v["exits"]),
            overstay_incident_id=v["incident_id"]) for v in visits])

"""Households, permitted leaves, daily follow-ups; devices; audit log."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from ground.timeutil import now_ts, utcnow
from server.domain import people
from server.domain.checkins import list_checkins, request_checkin
from server.domain.common import loads_list
from server.domain.errors import InvalidChangeError
from server.domain.followups import HOUSEHOLD_KEY, FeverRule
from server.domain.releases import ReleaseContext, ReleaseOutcome, list_releases
from server.domain.silences import list_silences
from server.web import actions
from server.web.deps import (
    CASEWORK,
    DEVICE_STAFF,
    OVERSEERS,
    Db,
    Settings,
    csrf_protect,
    require,
)
from server.web.followups_view import (
    export_rows,
    followups_csv,
    member_label,
    readings,
    today_lists,
)
from server.web.queries import (
    audit_entries,
    device_rows,
    household_rows,
    visible_household,
)
from server.web.render import language_of, render
from server.web.routes_coverage import chosen_day, coverage_of_day
from server.web.users import Role, User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Casework = Annotated[User, Depends(require(*CASEWORK))]
Overseer = Annotated[User, Depends(require(*OVERSEERS))]
DeviceStaff = Annotated[User, Depends(require(*DEVICE_STAFF))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]


@router.get("/households")
async def households_page(request: Request, db: Db, settings: Settings,
                          user: Casework) -> Response:
    """Households: quarantine day N of M, armed, device health, today's follow-up."""
    rows = await household_rows(db, user, settings.notify.timezone)
    return render(request, "households.html", user, rows=rows,
                  error=request.query_params.get("error"), **await _admin_choices(db, user))


async def _admin_choices(db: Db, user: User) -> dict[str, Any]:
    """Grids, workers and registered devices for the administration forms (overseers only)."""
    if user.role not in OVERSEERS:
        return {"grids": [], "workers": [], "all_devices": []}
    return {"grids": await people.list_grids(db),
            "workers": await people.list_workers(db, role=people.Role.WORKER),
            "all_devices": await db.fetch_all(
                "SELECT d.device_id, d.household_id, h.name AS household FROM devices d "
                "LEFT JOIN households h ON h.id = d.household_id ORDER BY d.device_id")}


async def _household_or_404(db: Db, user: User, household_id: int) -> dict[str, object]:
    row = await visible_household(db, user, household_id)
    if row is None:
        raise HTTPException(404)
    return row


_OWNER_SQL = {table: f"SELECT household_id FROM {table} WHERE id = ?"  # noqa: S608 - fixed names
              for table in ("leaves", "visits")}


async def _household_of(db: Db, user: User, table: str, record_id: int) -> int:
    """The household a leave or visit belongs to; 404 unless the user may see it."""
    row = await db.fetch_one(_OWNER_SQL[table], (record_id,))
    if row is None:
        raise HTTPException(404)
    household_id = int(row["household_id"])
    await _household_or_404(db, user, household_id)
    return household_id


async def _back_to_household(household_id: int, change: Awaitable[object],
                             anchor: str = "") -> Response:
    """Await a household page's form action; back to the page, with the refusal if refused."""
    try:
        await change
    except actions.ActionError as exc:
        return RedirectResponse(f"/households/{household_id}?error={exc.key}", status_code=303)
    return RedirectResponse(f"/households/{household_id}{anchor}", status_code=303)


@router.get("/households/{household_id}")
async def household_page(request: Request, db: Db, settings: Settings, user: Casework,
                         household_id: int) -> Response:
    """One household: leaves (grant/end), follow-ups (record), devices, incidents."""
    household = await _household_or_404(db, user, household_id)
    leaves = await db.fetch_all(
        "SELECT * FROM leaves WHERE household_id = ? ORDER BY starts_at DESC LIMIT 50",
        (household_id,))
    followups = await db.fetch_all(
        "SELECT * FROM followups WHERE household_id = ? ORDER BY day DESC, id DESC LIMIT 30",
        (household_id,))
    threshold = settings.followups.fever_c
    for row in followups:
        row["readings"] = readings(row, threshold)
    devices = [d for d in await device_rows(db, user) if d["household_id"] == household_id]
    today = datetime.now(ZoneInfo(settings.notify.timezone)).date()
    members = [str(m) for m in loads_list(str(household["members"]))] or [HOUSEHOLD_KEY]
    visits = await db.fetch_all(
        "SELECT * FROM visits WHERE household_id = ? ORDER BY starts_at DESC, id DESC LIMIT 50",
        (household_id,))
    releases = await list_releases(db, household_id)
    day = chosen_day(request.query_params.get("day"), settings.notify.timezone)
    coverage = (await coverage_of_day(db, [household_id], day, settings.notify.timezone))[
        household_id]
    return render(request, "household.html", user, h=household, leaves=leaves,
                  coverage=coverage, coverage_day=day.isoformat(),
                  checkins=await list_checkins(db, household_id),
                  checkin_window_min=round(settings.checkins.window_s / 60),
                  followups=followups, devices=devices, today=today.isoformat(),
                  members=members, fever_c=threshold, member_label=member_label,
                  visits=visits, stay_limit_min=settings.visits.stay_limit_min,
                  releases=releases, release_outcomes=list(ReleaseOutcome),
                  in_quarantine=_in_quarantine(household),
                  tz=ZoneInfo(settings.notify.timezone), **await _admin_choices(db, user),
                  silences=await list_silences(db, household_id=household_id),
                  may_silence=user.role in OVERSEERS, error=request.query_params.get("error"))


def _in_quarantine(household: dict[str, object]) -> bool:
    """Whether the household's quarantine can be ended now (armed, or its period not over)."""
    if household.get("purged_at"):
        return False
    end = household.get("quarantine_end")
    return bool(household.get("armed")) or (isinstance(end, str) and end > now_ts())


@router.post("/households/{household_id}/checkin")
async def ask_checkin(db: Db, settings: Settings, user: Casework, household_id: int) -> Response:
    """Ask the household's devices for a presence check-in now (chime, then the camera)."""
    await _household_or_404(db, user, household_id)
    try:
        await request_checkin(db, household_id, actor=user.username,
                              window_s=settings.checkins.window_s, now=utcnow())
    except InvalidChangeError as exc:
        return RedirectResponse(f"/households/{household_id}?error={exc.reason}",
                                status_code=303)
    return RedirectResponse(f"/households/{household_id}#checkins", status_code=303)


@router.post("/households/{household_id}/release")
async def release_household(
    db: Db, settings: Settings, user: Overseer, household_id: int,
    outcome: Annotated[str, Form(max_length=40)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """End the quarantine now: release record, devices disarmed, worker told (overseers)."""
    await _household_or_404(db, user, household_id)
    change = actions.release_household(db, household_id, outcome, note, user.username,
                                       ReleaseContext.of(settings))
    return await _back_to_household(household_id, change, "#release")


def _local(value: str, zone: str) -> datetime:
    """A ``datetime-local`` form value (``2026-02-01T09:30``) in the dashboard's zone."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        raise HTTPException(400, f"not a date and time: {value!r}") from None


@router.post("/households/{household_id}/leaves")
async def grant_leave(
    db: Db, settings: Settings, user: Casework, household_id: int,
    starts_at: Annotated[str, Form()], ends_at: Annotated[str, Form()],
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    """Grant a permitted leave (hospital, testing) with a time window."""
    await _household_or_404(db, user, household_id)
    zone = settings.notify.timezone
    change = actions.grant_leave(db, household_id, _local(starts_at, zone), _local(ends_at, zone),
                                 reason.strip(), user.username)
    return await _back_to_household(household_id, change)


@router.post("/leaves/{leave_id}/end")
async def end_leave(db: Db, user: Casework, leave_id: int) -> Response:
    """End a permitted leave now."""
    household_id = await _household_of(db, user, "leaves", leave_id)
    return await _back_to_household(household_id, actions.end_leave(db, leave_id, user.username))


@router.post("/households/{household_id}/visits")
async def register_visit(
    db: Db, settings: Settings, user: Casework, household_id: int,
    starts_at: Annotated[str, Form()], ends_at: Annotated[str, Form()],
    visitor: Annotated[str, Form(min_length=1, max_length=200)],
    purpose: Annotated[str, Form(min_length=1, max_length=500)],
    organisation: Annotated[str, Form(max_length=200)] = "",
    stay_limit_min: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Register an expected visit: who, organisation, purpose, window (and stay limit)."""
    await _household_or_404(db, user, household_id)
    zone = settings.notify.timezone
    try:
        limit = int(stay_limit_min) if stay_limit_min.strip() else None
    except ValueError:
        return RedirectResponse(f"/households/{household_id}?error=invalid", status_code=303)
    change = actions.register_visit(db, household_id, _local(starts_at, zone),
                                    _local(ends_at, zone), visitor.strip(), organisation.strip(),
                                    purpose.strip(), limit, user.username)
    return await _back_to_household(household_id, change, "#visits")


@router.post("/visits/{visit_id}/cancel")
async def cancel_visit(db: Db, user: Casework, visit_id: int) -> Response:
    """Withdraw a visit nobody came in for yet."""
    household_id = await _household_of(db, user, "visits", visit_id)
    change = actions.cancel_visit(db, visit_id, user.username)
    return await _back_to_household(household_id, change, "#visits")


@router.post("/households/{household_id}/followups")
async def record_followup(
    request: Request, db: Db, settings: Settings, user: Casework, household_id: int,
    symptoms: Annotated[str, Form(max_length=500)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Record today's follow-up: per member (repeated ``member``/``temp``/``symptom`` fields)."""
    await _household_or_404(db, user, household_id)
    form = await request.form()
    names = [str(v) for v in form.getlist("member")]
    temps = [str(v) for v in form.getlist("temp")]
    said = [str(v) for v in form.getlist("symptom")]
    if not len(names) == len(temps) == len(said):
        raise HTTPException(400, "member, temp and symptom fields must come in threes")
    temperatures: dict[str, float] = {}
    member_symptoms: dict[str, str] = {}
    for member, value, text in zip(names, temps, said, strict=True):
        if value.strip():
            try:
                temperatures[member] = float(value.replace(",", "."))
            except ValueError:
                return RedirectResponse(f"/households/{household_id}?error=invalid",
                                        status_code=303)
        if text.strip():
            member_symptoms[member] = text.strip()
    today = datetime.now(ZoneInfo(settings.notify.timezone)).date()
    change = actions.record_followup(db, household_id, today, temperatures, symptoms.strip(),
                                     note.strip(), user.username, rule=FeverRule.of(settings),
                                     member_symptoms=member_symptoms)
    return await _back_to_household(household_id, change)


@router.get("/followups")
async def followups_page(request: Request, db: Db, settings: Settings,
                         user: Casework) -> Response:
    """Today's follow-ups: households in quarantine not yet visited first, then visited ones."""
    today = datetime.now(ZoneInfo(settings.notify.timezone)).date()
    missing, visited = await today_lists(db, user, today)
    return render(request, "followups.html", user, missing=missing, visited=visited,
                  today=today.isoformat(), fever_c=settings.followups.fever_c)


def _day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"not a day: {value!r}") from None


@router.get("/followups.csv")
async def followups_export(request: Request, db: Db, settings: Settings,
                           user: Casework) -> Response:
    """Follow-ups from ``from`` to ``to`` (default: today), one line per member, as CSV."""
    today = datetime.now(ZoneInfo(settings.notify.timezone)).date()
    day_to = _day(request.query_params.get("to"), today)
    day_from = _day(request.query_params.get("from"), day_to)
    rows = await export_rows(db, user, day_from, day_to)
    body = followups_csv(rows, settings.followups.fever_c, settings.notify.timezone,
                         language_of(request, user))
    name = f"followups-{day_from.isoformat()}-{day_to.isoformat()}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/devices")
async def devices_page(request: Request, db: Db, settings: Settings,
                       user: DeviceStaff) -> Response:
    """Devices: online/offline, last heartbeat, fps, temperature, firmware, outbox depth."""
    rows = await device_rows(db, user)
    targets = (await household_rows(db, user, settings.notify.timezone)
               if user.sees_all_households else [])
    commissioning = await db.fetch_all(
        "SELECT device_id, device_time, payload FROM events WHERE kind = 'commissioning' "
        "ORDER BY id DESC LIMIT 50")
    return render(request, "devices.html", user, rows=rows, commissioning=commissioning,
                  targets=targets, error=request.query_params.get("error"))


@router.get("/audit")
async def audit_page(request: Request, db: Db, user: Overseer) -> Response:
    """Who did what, newest first."""
    actor = request.query_params.get("actor") or None
    action = request.query_params.get("action") or None
    rows = await audit_entries(db, actor=actor, action=action)
    return render(request, "audit.html", user, rows=rows, actor=actor or "",
                  action=action or "")

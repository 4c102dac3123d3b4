"""The JSON API (OpenAPI at /api/docs): what the admin CLI does, over HTTP, with the same roles.

Clients log in with ``POST /api/login`` (a session cookie) and send the CSRF
token from the answer as ``X-CSRF-Token`` on every change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import Response

from server.domain import devices, households, people
from server.domain.errors import InvalidChangeError, NotFoundError, UnknownDeviceError
from server.domain.followups import FeverRule
from server.domain.notification_outbox import NotificationContext
from server.domain.releases import ReleaseContext
from server.web import actions
from server.web.api_models import (
    AuditOut,
    DeviceIn,
    DeviceOut,
    EndQuarantineIn,
    FollowupIn,
    HouseholdOut,
    IdOut,
    IncidentDetailOut,
    IncidentOut,
    LeaveIn,
    LoginIn,
    ReplaceDeviceIn,
    ResolveIn,
    SessionOut,
    UserIn,
    UserOut,
    WorkerOut,
)
from server.web.deps import (
    CASEWORK,
    DEVICE_STAFF,
    OVERSEERS,
    CurrentUser,
    Db,
    Settings,
    csrf_protect,
    csrf_token,
    require,
)
from server.web.export import incidents_csv
from server.web.forms import parse_query
from server.web.queries import (
    IncidentFilter,
    audit_entries,
    device_rows,
    household_rows,
    incident_detail,
    incident_rows,
    visible_household,
)
from server.web.render import language_of
from server.web.routes_auth import attempt_login
from server.web.sessions import end_session
from server.web.users import Role, User, UserError, create_user, list_users

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(csrf_protect)])
login_router = APIRouter(prefix="/api", tags=["api"])

Casework = Annotated[User, Depends(require(*CASEWORK))]
Overseer = Annotated[User, Depends(require(*OVERSEERS))]
DeviceStaff = Annotated[User, Depends(require(*DEVICE_STAFF))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]


@asynccontextmanager
async def _domain_errors() -> AsyncIterator[None]:
    """The domain's refusals as HTTP answers: 404 missing, 409 wrong state, 400 bad value."""
    try:
        yield
    except UnknownDeviceError:
        raise  # the app's handler answers with the catalogue's device_unknown
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidChangeError as exc:
        raise HTTPException(409, exc.reason) from None
    except (ValidationError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


def _session(request: Request, user: User) -> SessionOut:
    return SessionOut(user=UserOut.model_validate(user, from_attributes=True),
                      csrf_token=csrf_token(request))


@login_router.post("/login", summary="Log in (JSON); answers with the CSRF token")
async def api_login(request: Request, db: Db, body: LoginIn) -> SessionOut:
    """Start a session. A JSON body cannot be sent cross-site without CORS, so no CSRF token
    is needed yet; failures count towards the same backoff as the login form."""
    outcome = await attempt_login(request, db, body.username, body.password)
    if outcome.user is None:
        headers = {"Retry-After": str(int(outcome.wait_s) + 1)} if outcome.wait_s else None
        raise HTTPException(outcome.status, "login failed" if outcome.status == 401
                            else "too many failed logins; try later", headers=headers)
    return _session(request, outcome.user)


@router.get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request, user: CurrentUser) -> dict[str, object]:
    """The OpenAPI schema of this API (logged-in users only)."""
    schema: dict[str, object] = request.app.openapi()
    return schema


@router.get("/session", summary="Who am I; the CSRF token")
async def api_session(request: Request, user: CurrentUser) -> SessionOut:
    """The logged-in user and the CSRF token."""
    return _session(request, user)


@router.post("/logout", status_code=204, summary="End the session")
async def api_logout(request: Request, db: Db, user: CurrentUser) -> Response:
    """Log out everywhere this session is used."""
    token = request.session.get("sid")
    if isinstance(token, str):
        await end_session(db, token, user)
    request.session.clear()
    return Response(status_code=204)


@router.get("/incidents", summary="List incidents (same filters as the page)")
async def api_incidents(
    request: Request, db: Db, settings: Settings, user: Casework
) -> list[IncidentOut]:
    """Incidents the user may see; query: state, kind, grid, household, date_from, date_to."""
    flt = parse_query(request, IncidentFilter)
    rows = await incident_rows(db, user, flt, settings.notify.timezone)
    return [IncidentOut.model_validate(r) for r in rows]


@router.get("/incidents/export.csv", summary="Export incidents as CSV",
            response_class=Response)
async def api_export(request: Request, db: Db, settings: Settings, user: Casework) -> Response:
    """The filtered incidents as CSV."""
    flt = parse_query(request, IncidentFilter)
    rows = await incident_rows(db, user, flt, settings.notify.timezone)
    return Response(incidents_csv(rows, settings.notify.timezone, language_of(request, user)),
                    media_type="text/csv; charset=utf-8")


@router.get("/incidents/{incident_id}", summary="One incident with timeline")
async def api_incident(db: Db, user: Casework, incident_id: int) -> IncidentDetailOut:
    """Events, notifications with delivery attempts, and history."""
    detail = await incident_detail(db, user, incident_id)
    if detail is None:
        raise HTTPException(404, "no such incident")
    return IncidentDetailOut.model_validate(detail)


async def _check_incident(db: Db, user: User, incident_id: int) -> None:
    if await incident_detail(db, user, incident_id) is None:
        raise HTTPException(404, "no such incident")


@router.post("/incidents/{incident_id}/ack", status_code=204, summary="Acknowledge")
async def api_ack(db: Db, settings: Settings, user: Casework, incident_id: int) -> Response:
    """open -> acknowledged."""
    await _check_incident(db, user, incident_id)
    try:
        await actions.acknowledge_incident(db, incident_id, user.username,
                                           NotificationContext.of(settings), user.worker_id)
    except actions.ActionError as exc:
        raise HTTPException(exc.status, exc.key) from None
    return Response(status_code=204)


@router.post("/incidents/{incident_id}/resolve", status_code=204, summary="Resolve")
async def api_resolve(db: Db, settings: Settings, user: Casework, incident_id: int,
                      body: ResolveIn) -> Response:
    """-> resolved with an outcome and a note."""
    await _check_incident(db, user, incident_id)
    try:
        await actions.resolve_incident(db, incident_id, user.username, body.outcome,
                                       body.note.strip(), NotificationContext.of(settings),
                                       user.worker_id)
    except actions.ActionError as exc:
        raise HTTPException(exc.status, exc.key) from None
    return Response(status_code=204)


@router.get("/households", summary="List households")
async def api_households(db: Db, settings: Settings, user: Casework) -> list[HouseholdOut]:
    """Households the user may see."""
    rows = await household_rows(db, user, settings.notify.timezone)
    return [HouseholdOut.model_validate(r) for r in rows]


@router.post("/households", status_code=201, summary="Add a household")
async def api_add_household(db: Db, user: Overseer, body: households.HouseholdIn) -> IdOut:
    """Create a household (supervisors and admins)."""
    async with _domain_errors():
        household_id = await households.add_household(db, body, actor=user.username)
    return IdOut(id=household_id)


@router.post("/households/{household_id}/end-quarantine", status_code=204,
             summary="End a household's quarantine early (audited)")
async def api_end_quarantine(db: Db, settings: Settings, user: Overseer, household_id: int,
                             body: EndQuarantineIn) -> Response:
    """Disarm the household's devices now; write the release record (who, when, outcome)."""
    async with _domain_errors():
        await households.end_quarantine_early(db, household_id, actor=user.username,
                                              reason=body.reason, outcome=body.outcome,
                                              release=ReleaseContext.of(settings))
    return Response(status_code=204)


@router.get("/households/{household_id}", summary="One household")
async def api_household(db: Db, settings: Settings, user: Casework,
                        household_id: int) -> HouseholdOut:
    """A household the user may see."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404, "no such household")
    rows = await household_rows(db, user, settings.notify.timezone)
    return next(HouseholdOut.model_validate(r) for r in rows if r["id"] == household_id)


@router.post("/households/{household_id}/leaves", status_code=201, summary="Grant a leave")
async def api_grant_leave(db: Db, user: Casework, household_id: int, body: LeaveIn) -> IdOut:
    """Permit the household to leave within a time window."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404, "no such household")
    try:
        leave_id = await actions.grant_leave(db, household_id, body.starts_at, body.ends_at,
                                             body.reason, user.username)
    except actions.ActionError as exc:
        raise HTTPException(exc.status, exc.key) from None
    return IdOut(id=leave_id)


@router.post("/leaves/{leave_id}/end", status_code=204, summary="End a leave")
async def api_end_leave(db: Db, user: Casework, leave_id: int) -> Response:
    """End a permitted leave now."""
    row = await db.fetch_one("SELECT household_id FROM leaves WHERE id = ?", (leave_id,))
    if row is None or await visible_household(db, user, int(row["household_id"])) is None:
        raise HTTPException(404, "no such leave")
    try:
        await actions.end_leave(db, leave_id, user.username)
    except actions.ActionError as exc:
        raise HTTPException(exc.status, exc.key) from None
    return Response(status_code=204)


@router.post("/households/{household_id}/followups", status_code=201,
             summary="Record today's follow-up")
async def api_followup(db: Db, settings: Settings, user: Casework, household_id: int,
                       body: FollowupIn) -> IdOut:
    """Temperatures per member, symptoms, note."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404, "no such household")
    today = datetime.now(ZoneInfo(settings.notify.timezone)).date()
    try:
        followup_id = await actions.record_followup(
            db, household_id, today, body.temperatures, body.symptoms, body.note, user.username,
            rule=FeverRule.of(settings), member_symptoms=body.member_symptoms)
    except actions.ActionError as exc:
        raise HTTPException(exc.status, exc.key) from None
    return IdOut(id=followup_id)


@router.get("/workers", summary="List workers")
async def api_workers(db: Db, user: Overseer) -> list[WorkerOut]:
    """Grid workers and supervisors."""
    return [WorkerOut.model_validate(w, from_attributes=True)
            for w in await people.list_workers(db)]


@router.post("/workers", status_code=201, summary="Add a worker")
async def api_add_worker(db: Db, user: Overseer, body: people.WorkerIn) -> IdOut:
    """Create a worker or supervisor notified through Apprise URLs."""
    async with _domain_errors():
        worker_id = await people.add_worker(db, body, actor=user.username)
    return IdOut(id=worker_id)


@router.get("/grids", summary="List grids")
async def api_grids(db: Db, user: Overseer) -> list[people.Grid]:
    """Every grid."""
    return await people.list_grids(db)


@router.post("/grids", status_code=201, summary="Add a grid")
async def api_add_grid(db: Db, user: Overseer, body: people.GridIn) -> IdOut:
    """Create a grid."""
    async with _domain_errors():
        grid_id = await people.add_grid(db, body, actor=user.username)
    return IdOut(id=grid_id)


@router.get("/devices", summary="List devices with health")
async def api_devices(db: Db, user: DeviceStaff) -> list[DeviceOut]:
    """Devices, online state and last heartbeat."""
    return [DeviceOut.model_validate(r) for r in await device_rows(db, user)]


@router.post("/devices", status_code=204, summary="Assign a provisioned device")
async def api_assign_device(db: Db, user: DeviceStaff, body: DeviceIn) -> Response:
    """Assign a device made by ``doorwatch device provision`` to a household.

    An id the server never registered (never provisioned, or mistyped) is refused
    (404, ``device_unknown``): nothing would ever report under it.
    """
    async with _domain_errors():
        if body.household_id is None:
            await devices.get_device(db, body.device_id)
        else:
            await devices.assign_device(db, body.device_id, body.household_id,
                                        actor=user.username)
    return Response(status_code=204)


@router.post("/devices/{device_id}/replace", status_code=204,
             summary="Replace a household's device, keeping its history")
async def api_replace_device(db: Db, user: DeviceStaff, device_id: str,
                             body: ReplaceDeviceIn) -> Response:
    """Swap ``device_id`` for ``new_device_id`` (both provisioned; unknown ids are refused)."""
    async with _domain_errors():
        await devices.replace_device(db, device_id, body.new_device_id, actor=user.username,
                                     reason=body.reason)
    return Response(status_code=204)


@router.get("/audit", summary="Audit log")
async def api_audit(db: Db, user: Overseer, actor: str | None = None,
                    action: str | None = None) -> list[AuditOut]:
    """The newest audit records."""
    rows = await audit_entries(db, actor=actor, action=action)
    return [AuditOut.model_validate(r) for r in rows]


@router.get("/users", summary="List users")
async def api_users(db: Db, user: Admin) -> list[UserOut]:
    """Dashboard users, disabled ones too (admin only)."""
    return [UserOut.model_validate(u, from_attributes=True)
            for u in await list_users(db, include_inactive=True)]


@router.post("/users", status_code=201, summary="Add a user")
async def api_add_user(db: Db, user: Admin, body: UserIn) -> IdOut:
    """Create a dashboard user (admin only)."""
    try:
        user_id = await create_user(db, body.username, body.password, body.role,
                                    language=body.language, worker_id=body.worker_id,
                                    actor=user.username)
    except UserError as exc:
        raise HTTPException(400, str(exc)) from None
    return IdOut(id=user_id)

"""Incident pages: list with filters, detail with actions, CSV export, live feed, charts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from ground.i18n import t
from server.domain.checkins import checkin_during, during_checkin_text
from server.domain.incident_opening import IncidentKind, IncidentState
from server.domain.notification_outbox import NotificationContext, visitor_context_text
from server.web import actions
from server.web.charts import (
    ack_times_by_grid,
    bar_chart_svg,
    incidents_per_day,
    stacked_days_svg,
)
from server.web.deps import CASEWORK, OVERSEERS, Db, Settings, csrf_protect, require
from server.web.export import incidents_csv
from server.web.forms import parse_id, parse_query
from server.web.live import incident_events
from server.web.queries import (
    IncidentFilter,
    grid_rows,
    incident_detail,
    incident_rows,
    incidents_since,
    latest_incident_id,
    snapshot_jpeg,
)
from server.web.render import duration, label, language_of, render
from server.web.timeline import timeline
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Casework = Annotated[User, Depends(require(*CASEWORK))]
Overseer = Annotated[User, Depends(require(*OVERSEERS))]


@router.get("/incidents")
async def incidents_page(request: Request, db: Db, settings: Settings, user: Casework) -> Response:
    """The incident log, filtered and sorted, updated live."""
    flt = parse_query(request, IncidentFilter)
    zone = settings.notify.timezone
    rows = await incident_rows(db, user, flt, zone)
    filtered = any(k in request.query_params and request.query_params[k] for k in
                   ("state", "kind", "grid", "household", "date_from", "date_to"))
    return render(request, "incidents.html", user, rows=rows, flt=flt, grids=await
                  grid_rows(db, user), kinds=list(IncidentKind), states=list(IncidentState),
                  latest=await latest_incident_id(db), filtered=filtered,
                  query=request.url.query)


@router.get("/incidents.csv")
async def incidents_export(
    request: Request, db: Db, settings: Settings, user: Casework
) -> Response:
    """The filtered incident log as CSV (UTF-8 with BOM for spreadsheets)."""
    flt = parse_query(request, IncidentFilter)
    rows = await incident_rows(db, user, flt, settings.notify.timezone)
    body = incidents_csv(rows, settings.notify.timezone, language_of(request, user))
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="incidents.csv"'})


@router.get("/live/incidents")
async def live_incidents(
    request: Request, db: Db, user: Casework, after: str | None = None
) -> Response:
    """Server-sent events announcing incidents opened after ``after`` (or Last-Event-ID).

    Both are checked before the stream starts: a bad value is a 400, not a
    stream that breaks after its first frame.
    """
    header = request.headers.get("last-event-id")
    if header:
        start: int | None = parse_id(header, "Last-Event-ID")
    else:
        start = parse_id(after, "after") if after else None
    if start is None:
        start = await latest_incident_id(db)
    return StreamingResponse(incident_events(request, db, user, start),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/incidents/{incident_id}/row")
async def incident_row(request: Request, db: Db, user: Casework, incident_id: int) -> Response:
    """One table row, for the live feed to insert."""
    rows = [r for r in await incidents_since(db, user, incident_id - 1, limit=1)
            if r["id"] == incident_id]
    if not rows:
        raise HTTPException(404)
    return render(request, "incident_row.html", user, row=rows[0], fresh=True)


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request, db: Db, user: Casework, incident_id: int) -> Response:
    """Timeline, snapshots, notifications and the acknowledge/resolve forms."""
    detail = await incident_detail(db, user, incident_id)
    if detail is None:
        raise HTTPException(404)
    # Events and audit entries interleaved by time, in the reader's language.
    language = language_of(request, user)
    steps = timeline(detail["events"], detail["history"], language)
    extra = await db.fetch_one("SELECT kind, detail, visitor_context FROM incidents WHERE id = ?",
                               (incident_id,))
    zone = request.app.state.settings.notify.timezone
    visitor_note = (visitor_context_text(extra["visitor_context"], language, zone)
                    if extra and extra["visitor_context"] else None)
    taken = await checkin_during(db, incident_id, extra["kind"]) if extra else None
    checkin_note = during_checkin_text(taken, language, zone) if taken else None
    return render(request, "incident.html", user, outcomes=list(actions.Outcome),
                  error=request.query_params.get("error"), timeline=steps,
                  incident_detail_text=extra["detail"] if extra else None,
                  visitor_note=visitor_note, checkin_note=checkin_note, **detail)


@router.get("/incidents/{incident_id}/snapshots/{event_id}.jpg")
async def incident_snapshot(db: Db, user: Casework, incident_id: int, event_id: str) -> Response:
    """The JPEG evidence of one of the incident's events."""
    jpeg = await snapshot_jpeg(db, user, incident_id, event_id)
    if jpeg is None:
        raise HTTPException(404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private"})


async def _visible(db: Db, user: User, incident_id: int) -> None:
    if await incident_detail(db, user, incident_id) is None:
        raise HTTPException(404)


@router.post("/incidents/{incident_id}/ack")
async def acknowledge(db: Db, settings: Settings, user: Casework, incident_id: int) -> Response:
    """Acknowledge: I am on it."""
    await _visible(db, user, incident_id)
    try:
        await actions.acknowledge_incident(db, incident_id, user.username,
                                           NotificationContext.of(settings), user.worker_id)
    except actions.ActionError as exc:
        return RedirectResponse(f"/incidents/{incident_id}?error={exc.key}", status_code=303)
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


@router.post("/incidents/{incident_id}/resolve")
async def resolve(
    db: Db, settings: Settings, user: Casework, incident_id: int,
    outcome: Annotated[actions.Outcome, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Resolve with an outcome and a note."""
    await _visible(db, user, incident_id)
    try:
        await actions.resolve_incident(db, incident_id, user.username, outcome, note.strip(),
                                       NotificationContext.of(settings), user.worker_id)
    except actions.ActionError as exc:
        return RedirectResponse(f"/incidents/{incident_id}?error={exc.key}", status_code=303)
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


@router.get("/charts")
async def charts_page(request: Request, db: Db, settings: Settings, user: Overseer) -> Response:
    """Incidents per day by kind; median time to acknowledge per grid."""
    lang = language_of(request, user)
    days = min(max(parse_id(request.query_params.get("days") or "14", "days"), 1), 90)
    axis, counts = await incidents_per_day(db, user, settings.notify.timezone, days)
    labels = {k: label("incident.kind", k, lang) for k in counts}
    per_day = stacked_days_svg(axis, counts, labels, t("web.charts.per_day", lang, days=days))
    acks = await ack_times_by_grid(db, user)
    no_grid = t("web.grid.none", lang)
    ack_svg = bar_chart_svg(
        [(g or no_grid, m, f"{duration(m, lang)} (n={n})") for g, m, n in acks],
        t("web.charts.ack", lang))
    return render(request, "charts.html", user, per_day=per_day, ack_svg=ack_svg,
                  has_acks=bool(acks), days=days)

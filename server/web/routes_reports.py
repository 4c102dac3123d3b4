"""Grid reports in the dashboard (issue 19 item 5): printable page, PDF, reports sent.

Supervisors and admins only (a report spans a whole grid). The page and the
PDF render the same :class:`~server.domain.reports.GridReport`; the PDF of a
report the job sent is served as it was sent (``/reports/<id>.pdf``, the link in
the notification).
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import Response

from ground.timeutil import utcnow
from server.domain import people
from server.domain.errors import NotFoundError
from server.domain.reports import GridReport, ReportKind, build_grid_report
from server.notify.report_pdf import duration, render_report_pdf, share_text, summary_lines, title
from server.web.deps import OVERSEERS, Db, Settings, csrf_protect, require
from server.web.render import language_of, render
from server.web.routes_coverage import chosen_day
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Overseer = Annotated[User, Depends(require(*OVERSEERS))]


def _kind(request: Request) -> ReportKind:
    try:
        return ReportKind(request.query_params.get("kind") or "daily")
    except ValueError:
        raise HTTPException(400, "kind is daily or weekly") from None


async def _report(request: Request, db: Db, settings: Settings, grid_id: int) -> GridReport:
    zone = settings.notify.timezone
    try:
        return await build_grid_report(
            db, grid_id, chosen_day(request.query_params.get("day"), zone), _kind(request),
            zone=zone, fever_c=settings.followups.fever_c, now=utcnow())
    except NotFoundError:
        raise HTTPException(404) from None


@router.get("/reports")
async def reports_page(request: Request, db: Db, settings: Settings, user: Overseer) -> Response:
    """Grids with links to today's report and the week's summary; the reports sent."""
    sent = await db.fetch_all(
        "SELECT r.id, r.kind, r.first_day, r.days, r.language, r.created_at, g.name AS grid "
        "FROM reports r JOIN grids g ON g.id = r.grid_id ORDER BY r.id DESC LIMIT 50")
    return render(request, "reports.html", user, grids=await people.list_grids(db), sent=sent,
                  day=chosen_day(request.query_params.get("day"),
                                 settings.notify.timezone).isoformat())


@router.get("/reports/{report_id}.pdf")
async def sent_report_pdf(db: Db, user: Overseer, report_id: int) -> Response:
    """A report as it was sent (the notification's link)."""
    row = await db.fetch_one("SELECT first_day, kind, pdf FROM reports WHERE id = ?",
                             (report_id,))
    if row is None:
        raise HTTPException(404)
    return Response(bytes(row["pdf"]), media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="report-{row["first_day"]}-{row["kind"]}.pdf"'})


@router.get("/reports/grid/{grid_id}.pdf")
async def grid_report_pdf(request: Request, db: Db, settings: Settings, user: Overseer,
                          grid_id: int) -> Response:
    """The grid's report as a PDF, now, in the viewer's language."""
    report = await _report(request, db, settings, grid_id)
    pdf = await asyncio.to_thread(render_report_pdf, report, language_of(request, user),
                                  settings.notify.timezone)
    name = f"report-{report.first_day.isoformat()}-{report.kind.value}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


@router.get("/reports/grid/{grid_id}")
async def grid_report_page(request: Request, db: Db, settings: Settings, user: Overseer,
                           grid_id: int) -> Response:
    """The grid's report as a printable page."""
    report = await _report(request, db, settings, grid_id)
    language = language_of(request, user)
    return render(request, "report.html", user, report=report,
                  heading=title(report, language), lines=summary_lines(report, language),
                  share_text=lambda s: share_text(s, language),
                  span=lambda s: duration(s, language), tz=ZoneInfo(settings.notify.timezone),
                  query=f"day={report.first_day.isoformat()}&kind={report.kind.value}")

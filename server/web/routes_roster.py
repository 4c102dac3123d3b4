"""The duty roster page: who is on shift in each grid, with their backup (admins, supervisors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from ground.timeutil import utcnow
from server.domain.errors import InvalidChangeError, NotFoundError
from server.domain.people import list_grids, list_workers
from server.domain.roster import ShiftIn, add_shift, covers, list_shifts, remove_shift
from server.web.deps import OVERSEERS, Db, Settings, csrf_protect, require
from server.web.render import render
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Overseer = Annotated[User, Depends(require(*OVERSEERS))]


@router.get("/roster")
async def roster_page(request: Request, db: Db, settings: Settings, user: Overseer) -> Response:
    """Every grid's shifts (who is on duty now is marked) and a form to add one."""
    shifts = await list_shifts(db)
    now = utcnow()
    zone = settings.notify.timezone
    return render(request, "roster.html", user, shifts=shifts,
                  on_now={s.id for s in shifts if covers(s, now, zone)},
                  grids=await list_grids(db), workers=await list_workers(db),
                  error=request.query_params.get("error"))


@router.post("/roster")
async def roster_add(
    db: Db, user: Overseer, grid_id: Annotated[int, Form()], worker_id: Annotated[int, Form()],
    starts: Annotated[str, Form()], ends: Annotated[str, Form()],
    days: Annotated[list[str] | None, Form()] = None,
    backup_id: Annotated[str, Form()] = "", notes: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Add a shift (audited as the logged-in user)."""
    try:
        shift = ShiftIn(grid_id=grid_id, worker_id=worker_id,
                        backup_id=int(backup_id) if backup_id.strip() else None,
                        days="".join(days or []), starts=starts, ends=ends,
                        notes=notes.strip() or None)
        await add_shift(db, shift, actor=user.username)
    except (ValidationError, ValueError):
        return RedirectResponse("/roster?error=invalid", status_code=303)
    except InvalidChangeError as exc:
        return RedirectResponse(f"/roster?error={exc.reason}", status_code=303)
    except NotFoundError:
        return RedirectResponse("/roster?error=not_found", status_code=303)
    return RedirectResponse("/roster", status_code=303)


@router.post("/roster/{shift_id}/remove")
async def roster_remove(db: Db, user: Overseer, shift_id: int) -> Response:
    """Take a shift off the roster (audited)."""
    try:
        await remove_shift(db, shift_id, actor=user.username)
    except NotFoundError:
        return RedirectResponse("/roster?error=not_found", status_code=303)
    return RedirectResponse("/roster", status_code=303)

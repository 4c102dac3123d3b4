"""Silencing a household from its page (admins and supervisors); every change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from server.domain.errors import InvalidChangeError, NotFoundError
from server.domain.silences import SilenceIn, lift_silence, silence_household
from server.web.deps import OVERSEERS, Db, Settings, csrf_protect, require
from server.web.queries import visible_household
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Overseer = Annotated[User, Depends(require(*OVERSEERS))]


@router.post("/households/{household_id}/silence")
async def silence(
    db: Db, settings: Settings, user: Overseer, household_id: int,
    reason: Annotated[str, Form(max_length=500)], until: Annotated[str, Form()],
    include_breaches: Annotated[str, Form()] = "",
) -> Response:
    """Silence the household until ``until`` (a ``datetime-local`` in the dashboard's zone)."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404)
    back = f"/households/{household_id}"
    try:
        end = datetime.fromisoformat(until).replace(tzinfo=ZoneInfo(settings.notify.timezone))
        await silence_household(db, SilenceIn(
            household_id=household_id, reason=reason, until=end,
            include_breaches=bool(include_breaches)), actor=user.username)
    except (ValueError, ValidationError):
        return RedirectResponse(f"{back}?error=invalid", status_code=303)
    except InvalidChangeError as exc:
        return RedirectResponse(f"{back}?error={exc.reason}", status_code=303)
    return RedirectResponse(back, status_code=303)


@router.post("/silences/{silence_id}/lift")
async def lift(db: Db, user: Overseer, silence_id: int) -> Response:
    """End a silence now."""
    row = await db.fetch_one("SELECT household_id FROM household_silences WHERE id = ?",
                             (silence_id,))
    if row is None or await visible_household(db, user, int(row["household_id"])) is None:
        raise HTTPException(404)
    back = f"/households/{row['household_id']}"
    try:
        await lift_silence(db, silence_id, actor=user.username)
    except (InvalidChangeError, NotFoundError):
        return RedirectResponse(f"{back}?error=silence_over", status_code=303)
    return RedirectResponse(back, status_code=303)

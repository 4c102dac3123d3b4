"""Administration in the dashboard (issue 19, item 8): households, members, devices.

Admins and supervisors add and edit households (members, period, worker,
grid) and assign registered devices to them; admins, supervisors and
installers register a device on the server (its broker credentials come from
``doorwatch device provision``). Each write is one call of the domain, which
audits it in the same transaction; a refusal comes back to the page as
``?error=<key>`` (``web.error.<key>`` in the catalogue).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from server.domain import devices, households
from server.domain.errors import InvalidChangeError, NotFoundError, UnknownDeviceError
from server.web.deps import DEVICE_STAFF, OVERSEERS, Db, Settings, csrf_protect, require
from server.web.queries import visible_household
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

Overseer = Annotated[User, Depends(require(*OVERSEERS))]
DeviceStaff = Annotated[User, Depends(require(*DEVICE_STAFF))]

Text = Annotated[str, Form(max_length=2000)]


class _RefusedError(Exception):
    def __init__(self, key: str):
        self.key = key


def _members(text: str) -> list[str]:
    """Members typed one per line (or separated by commas, semicolons, ideographic commas)."""
    return [m.strip() for m in re.split(r"[\n,，、;；]", text) if m.strip()]


def _when(value: str, zone: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        raise _RefusedError("invalid") from None


def _id(value: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise _RefusedError("invalid") from None


def _back(path: str, error: str | None = None, anchor: str = "") -> Response:
    return RedirectResponse(path + (f"?error={error}" if error else "") + anchor, status_code=303)


@router.post("/households")
async def add_household(
    db: Db, settings: Settings, user: Overseer,
    name: Annotated[str, Form(max_length=200)], address: Annotated[str, Form(max_length=500)],
    grid_id: Text = "", worker_id: Text = "", members: Text = "",
    quarantine_start: Text = "", quarantine_end: Text = "", notes: Text = "",
) -> Response:
    """A new household (with its members and quarantine period)."""
    zone = settings.notify.timezone
    try:
        household = households.HouseholdIn(
            name=name, address=address, grid_id=_id(grid_id), worker_id=_id(worker_id),
            members=_members(members), quarantine_start=_when(quarantine_start, zone),
            quarantine_end=_when(quarantine_end, zone), notes=notes.strip() or None)
        household_id = await households.add_household(db, household, actor=user.username)
    except _RefusedError as exc:
        return _back("/households", exc.key, "#add-household")
    except ValidationError:
        return _back("/households", "invalid", "#add-household")
    except (InvalidChangeError, NotFoundError) as exc:
        return _back("/households", getattr(exc, "reason", "not_found"), "#add-household")
    return _back(f"/households/{household_id}")


@router.post("/households/{household_id}/edit")
async def edit_household(
    db: Db, settings: Settings, user: Overseer, household_id: int,
    name: Annotated[str, Form(max_length=200)], address: Annotated[str, Form(max_length=500)],
    grid_id: Text = "", worker_id: Text = "", members: Text = "",
    quarantine_start: Text = "", quarantine_end: Text = "", notes: Text = "",
) -> Response:
    """Change a household: name, address, grid, worker, members, period, notes."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404)
    zone = settings.notify.timezone
    path = f"/households/{household_id}"
    try:
        change = households.HouseholdUpdate(
            name=name, address=address, grid_id=_id(grid_id), worker_id=_id(worker_id),
            members=_members(members), quarantine_start=_when(quarantine_start, zone),
            quarantine_end=_when(quarantine_end, zone), notes=notes.strip() or None)
        await households.update_household(db, household_id, change, actor=user.username)
    except _RefusedError as exc:
        return _back(path, exc.key, "#edit-household")
    except ValidationError:
        return _back(path, "invalid", "#edit-household")
    except (InvalidChangeError, NotFoundError) as exc:
        return _back(path, getattr(exc, "reason", "not_found"), "#edit-household")
    return _back(path)


@router.post("/devices")
async def register_device(
    db: Db, user: DeviceStaff, device_id: Annotated[str, Form(max_length=64)],
    household_id: Text = "",
) -> Response:
    """Register a device on the server (assigned at once if a household is chosen)."""
    device_id = device_id.strip()
    try:
        target = _id(household_id)
        if target is not None and (not user.sees_all_households
                                   or await visible_household(db, user, target) is None):
            raise _RefusedError("forbidden")
        await devices.register_device(db, device_id, household_id=target, actor=user.username)
    except _RefusedError as exc:
        return _back("/devices", exc.key, "#register-device")
    except (InvalidChangeError, NotFoundError) as exc:
        return _back("/devices", getattr(exc, "reason", "not_found"), "#register-device")
    return _back(f"/devices/{device_id}")


@router.post("/households/{household_id}/devices")
async def assign_device(
    db: Db, user: Overseer, household_id: int, device_id: Annotated[str, Form(max_length=64)],
) -> Response:
    """Assign a registered device to the household (ending its earlier assignment)."""
    if await visible_household(db, user, household_id) is None:
        raise HTTPException(404)
    path = f"/households/{household_id}"
    try:
        await devices.assign_device(db, device_id.strip(), household_id, actor=user.username,
                                    reason="assigned in the dashboard")
    except UnknownDeviceError:
        return _back(path, "not_found", "#edit-household")
    except (InvalidChangeError, NotFoundError) as exc:
        return _back(path, getattr(exc, "reason", "not_found"), "#edit-household")
    return _back(path)

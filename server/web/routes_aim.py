"""The device's page: aim picture, door line, and redrawing the line (issue 15, item 6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from broker.door_line import DoorLine
from server.web.aim import aim_picture, aim_view, send_door_line
from server.web.deps import DEVICE_STAFF, Db, csrf_protect, require
from server.web.render import render
from server.web.users import User

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_protect)])

DeviceStaff = Annotated[User, Depends(require(*DEVICE_STAFF))]
Coordinate = Annotated[float, Form(ge=0.0, le=1.0, allow_inf_nan=False)]


@router.get("/devices/{device_id}")
async def device_page(request: Request, db: Db, user: DeviceStaff, device_id: str) -> Response:
    """The aim picture with the door line drawn over it, and the form to redraw it."""
    # An unknown device id is answered by the app's UnknownDeviceError handler.
    view = await aim_view(db, device_id)
    return render(request, "device.html", user, view=view,
                  error=request.query_params.get("error"))


@router.get("/devices/{device_id}/aim/{event_id}.jpg")
async def aim_jpeg(db: Db, _user: DeviceStaff, device_id: str, event_id: str) -> Response:
    """The aim picture sent by the device's commissioning."""
    jpeg = await aim_picture(db, device_id, event_id)
    if jpeg is None:
        raise HTTPException(404)
    return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "private"})


@router.post("/devices/{device_id}/door-line")
async def redraw_door_line(
    request: Request, db: Db, user: DeviceStaff, device_id: str,
    x1: Coordinate, y1: Coordinate, x2: Coordinate, y2: Coordinate,
    inside_x: Coordinate, inside_y: Coordinate,
) -> Response:
    """Send the line drawn on the picture to the device (audited)."""
    try:
        line = DoorLine(threshold=((x1, y1), (x2, y2)), inside_point=(inside_x, inside_y))
    except ValidationError:
        return RedirectResponse(f"/devices/{device_id}?error=door_line", status_code=303)
    commands = getattr(request.app.state, "commands", None)
    if commands is None:  # a dashboard without the server's broker link (tests of pages only)
        raise HTTPException(503, "no broker link")
    await send_door_line(db, commands, device_id, line, actor=user.username)
    return RedirectResponse(f"/devices/{device_id}", status_code=303)

"""The device's page: aim picture, door line, redrawing the line (issue 15, item 6);
a fresh snapshot and remote settings (issue 19, item 8)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from broker.door_line import DoorLine
from server.jobs.schedule import CommandPublisher
from server.web.aim import aim_picture, aim_view, send_door_line
from server.web.deps import DEVICE_STAFF, Db, csrf_protect, require
from server.web.device_admin import (
    CONFIG_ACTION,
    SNAPSHOT_ACTION,
    DeviceSettingsIn,
    last_command,
    requested_snapshot,
    requested_snapshot_jpeg,
    send_settings,
    send_snapshot_request,
)
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
                  error=request.query_params.get("error"),
                  snapshot_status=await last_command(db, device_id, SNAPSHOT_ACTION),
                  snapshot_event=await requested_snapshot(db, device_id),
                  config_status=await last_command(db, device_id, CONFIG_ACTION))


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


def _commands(request: Request) -> CommandPublisher:
    commands = getattr(request.app.state, "commands", None)
    if commands is None:  # a dashboard without the server's broker link (tests of pages only)
        raise HTTPException(503, "no broker link")
    publisher: CommandPublisher = commands
    return publisher


@router.post("/devices/{device_id}/snapshot")
async def request_snapshot(request: Request, db: Db, user: DeviceStaff,
                           device_id: str) -> Response:
    """Ask the device for a fresh picture (its ``snapshot`` command; audited)."""
    await send_snapshot_request(db, _commands(request), device_id, actor=user.username)
    return RedirectResponse(f"/devices/{device_id}#commands", status_code=303)


def _number(value: str) -> float | None:
    return float(value) if value.strip() else None


@router.post("/devices/{device_id}/settings")
async def change_settings(
    request: Request, db: Db, user: DeviceStaff, device_id: str,
    heartbeat_interval_s: Annotated[str, Form(max_length=12)] = "",
    max_open_s: Annotated[str, Form(max_length=12)] = "",
    min_passage_confidence: Annotated[str, Form(max_length=12)] = "",
    jpeg_quality: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Send changed settings to the device (its ``config_update`` command; audited)."""
    try:
        quality = _number(jpeg_quality)
        settings = DeviceSettingsIn(
            heartbeat_interval_s=_number(heartbeat_interval_s), max_open_s=_number(max_open_s),
            min_passage_confidence=_number(min_passage_confidence),
            jpeg_quality=None if quality is None else int(quality))
    except (ValueError, ValidationError):
        return RedirectResponse(f"/devices/{device_id}?error=invalid", status_code=303)
    await send_settings(db, _commands(request), device_id, settings, actor=user.username)
    return RedirectResponse(f"/devices/{device_id}#commands", status_code=303)


@router.get("/devices/{device_id}/snapshots/{event_id}.jpg")
async def requested_jpeg(db: Db, _user: DeviceStaff, device_id: str, event_id: str) -> Response:
    """The picture the device sent in answer to a snapshot request."""
    jpeg = await requested_snapshot_jpeg(db, device_id, event_id)
    if jpeg is None:
        raise HTTPException(404)
    return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "private"})

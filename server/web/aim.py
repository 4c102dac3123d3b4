"""The aim picture and door line of a device, and redrawing the line from the dashboard.

A device's ``agent commission`` sends a ``commissioning`` event carrying the
door line it uses, followed by the aim picture (the camera's frame, without
drawings) as that event's snapshot. The device's page shows the picture with
the line drawn over it; an installer or supervisor redraws it there, and it
goes to the device as a ``config_update`` of ``camera.scene``, which the
device validates, persists and acknowledges.

Each redraw is one audit-log entry holding the line and the command id: the
audit log is where who-changed-what lives anyway, and the latest entry newer
than the device's last commissioning is the line the device was told to use.
The device's acknowledgement (a stored ``command_ack``) says whether it took it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from broker.door_line import DoorLine
from broker.messages import ConfigUpdateCommand, encode, utc_now
from broker.topics import command_topic
from server.db.base import Database
from server.db.event_key import event_key_of_text
from server.domain.audit import audit
from server.domain.errors import UnknownDeviceError
from server.jobs.schedule import CommandPublisher

__all__ = ["AUDIT_ACTION", "AimView", "Redraw", "aim_picture", "aim_view", "command_ack_state",
           "send_door_line"]

AUDIT_ACTION = "device.door_line"

RedrawState = Literal["sent", "applied", "refused"]


@dataclass(frozen=True)
class Redraw:
    """The latest line drawn in the dashboard for a device, and what the device said."""

    at: str
    actor: str
    command_id: str
    line: DoorLine
    state: RedrawState
    reason: str | None = None


@dataclass(frozen=True)
class AimView:
    """What the device's page shows."""

    device_id: str
    picture: str | None  # event id of the commissioning event whose snapshot is the picture
    commissioned_at: str | None
    line: DoorLine | None  # the line in force: the latest redraw, else the device's own
    redraw: Redraw | None


def _subject(device_id: str) -> str:
    return f"device:{device_id}"


async def command_ack_state(
    db: Database, device_id: str, command_id: str
) -> tuple[RedrawState, str | None]:
    """Whether the device took command ``command_id``: sent (no answer yet), applied, refused."""
    rows = await db.fetch_all(
        "SELECT payload FROM events WHERE device_id = ? AND type = 'command_ack' "
        "ORDER BY id DESC LIMIT 100", (device_id,))
    for row in rows:
        ack: dict[str, Any] = json.loads(str(row["payload"]))
        if ack.get("command_id") == command_id:
            return ("applied", None) if ack.get("ok") else ("refused", ack.get("reason"))
    return "sent", None


async def aim_view(db: Database, device_id: str) -> AimView:
    """The device's aim picture and door line (:class:`UnknownDeviceError` if not registered)."""
    if await db.fetch_one("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)) is None:
        raise UnknownDeviceError(device_id)
    event = await db.fetch_one(
        "SELECT e.event_id, e.received_at, e.payload FROM events e "
        "JOIN snapshots s ON s.event_id = e.event_id AND s.device_id = e.device_id "
        "WHERE e.device_id = ? AND e.kind = 'commissioning' ORDER BY e.id DESC LIMIT 1",
        (device_id,))
    line: DoorLine | None = None
    if event is not None:
        reported = json.loads(str(event["payload"])).get("door_line")
        line = DoorLine.model_validate(reported) if reported else None
    entry = await db.fetch_one(
        "SELECT at, actor, detail FROM audit_log WHERE action = ? AND subject = ? "
        "ORDER BY id DESC LIMIT 1", (AUDIT_ACTION, _subject(device_id)))
    redraw = None
    # A redraw older than the last commissioning was overtaken by what the installer
    # set up on the device since.
    if entry is not None and (event is None or str(entry["at"]) >= str(event["received_at"])):
        detail = json.loads(str(entry["detail"]))
        state, reason = await command_ack_state(db, device_id, detail["command_id"])
        redraw = Redraw(at=str(entry["at"]), actor=str(entry["actor"]),
                        command_id=detail["command_id"],
                        line=DoorLine.model_validate(detail["line"]), state=state, reason=reason)
        line = redraw.line
    return AimView(device_id=device_id, picture=None if event is None else str(event["event_id"]),
                   commissioned_at=None if event is None else str(event["received_at"]),
                   line=line, redraw=redraw)


async def aim_picture(db: Database, device_id: str, event_id: str) -> bytes | None:
    """The JPEG of the device's commissioning event ``event_id``."""
    key = event_key_of_text(event_id)
    if key is None:
        return None
    row = await db.fetch_one(
        "SELECT s.jpeg FROM snapshots s JOIN events e ON e.event_id = s.event_id "
        "AND e.device_id = s.device_id "  # a snapshot is its own device's evidence only
        "WHERE s.event_id = ? AND e.event_key = ? AND e.device_id = ? "
        "AND e.kind = 'commissioning'",
        (event_id, key, device_id))
    return None if row is None else bytes(row["jpeg"])


async def send_door_line(db: Database, publisher: CommandPublisher, device_id: str,
                         line: DoorLine, *, actor: str) -> UUID:
    """Audit the new line and send it to the device as a ``config_update``; the command id.

    QoS 1 to the device's persistent session: an offline device gets it when it
    connects. The device checks it like any configuration and acknowledges.
    """
    if await db.fetch_one("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)) is None:
        raise UnknownDeviceError(device_id)
    command = ConfigUpdateCommand(device_id=device_id, issued_at=utc_now(),
                                  config=line.scene_update(f"drawn in the dashboard by {actor}"))
    detail = json.dumps({"command_id": str(command.command_id),
                         "line": line.model_dump(mode="json")})
    async with db.transaction() as tx:
        await audit(tx, actor, AUDIT_ACTION, _subject(device_id), detail)
    publisher.publish(command_topic(device_id, command.name), encode(command), qos=1)
    return command.command_id

"""A device's fresh snapshot and settings, requested from the dashboard (issue 19, item 8).

Both go out as the agent's existing commands on the device's command topic
(``doorwatch/v1/cmd/<device>/snapshot`` and ``.../config_update``, QoS 1 into
its persistent session, so an offline device gets them when it connects):

* ``snapshot``: the device answers with an acknowledgement (a ``command_ack``
  record) and the latest frame as that acknowledgement's snapshot; the page
  shows the newest such picture;
* ``config_update``: a few settings an overseer may change remotely (a subset
  of what the agent accepts; the device validates the whole and answers
  applied or refused with the reason).

Each request is one audit entry holding the command id (as the door line's
redraw is, :mod:`server.web.aim`), which is how the page finds the device's
answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from broker.messages import ConfigUpdateCommand, SnapshotCommand, encode, utc_now
from broker.topics import command_topic
from server.db.base import Database
from server.domain.audit import audit
from server.domain.errors import UnknownDeviceError
from server.jobs.schedule import CommandPublisher
from server.web.aim import RedrawState, command_ack_state

__all__ = [
    "CONFIG_ACTION",
    "SNAPSHOT_ACTION",
    "CommandStatus",
    "DeviceSettingsIn",
    "last_command",
    "requested_snapshot",
    "requested_snapshot_jpeg",
    "send_settings",
    "send_snapshot_request",
]

SNAPSHOT_ACTION = "device.snapshot_request"
CONFIG_ACTION = "device.config_update"


class DeviceSettingsIn(BaseModel):
    """Settings an overseer may change from the dashboard (None = leave as it is)."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_interval_s: float | None = Field(None, ge=5, le=3600)
    max_open_s: float | None = Field(None, ge=10, le=24 * 3600,
                                     description="door.max_open_s")
    min_passage_confidence: float | None = Field(None, ge=0.0, le=1.0,
                                                 description="camera.min_passage_confidence")
    jpeg_quality: int | None = Field(None, ge=20, le=100, description="evidence.jpeg_quality")

    def update(self) -> dict[str, Any]:
        """The ``config_update`` body (nested tables) of the fields given."""
        out: dict[str, Any] = {}
        if self.heartbeat_interval_s is not None:
            out["heartbeat_interval_s"] = self.heartbeat_interval_s
        if self.max_open_s is not None:
            out["door"] = {"max_open_s": self.max_open_s}
        if self.min_passage_confidence is not None:
            out["camera"] = {"min_passage_confidence": self.min_passage_confidence}
        if self.jpeg_quality is not None:
            out["evidence"] = {"jpeg_quality": self.jpeg_quality}
        return out


@dataclass(frozen=True)
class CommandStatus:
    """The latest request of one kind for a device, and what the device said."""

    at: str
    actor: str
    command_id: str
    state: RedrawState
    reason: str | None
    detail: dict[str, Any]


async def _known(db: Database, device_id: str) -> None:
    if await db.fetch_one("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)) is None:
        raise UnknownDeviceError(device_id)


async def send_snapshot_request(db: Database, publisher: CommandPublisher, device_id: str,
                                *, actor: str) -> UUID:
    """Audit and send a ``snapshot`` command; return its id."""
    await _known(db, device_id)
    command = SnapshotCommand(device_id=device_id, issued_at=utc_now())
    async with db.transaction() as tx:
        await audit(tx, actor, SNAPSHOT_ACTION, f"device:{device_id}",
                    json.dumps({"command_id": str(command.command_id)}))
    publisher.publish(command_topic(device_id, command.name), encode(command), qos=1)
    return command.command_id


async def send_settings(db: Database, publisher: CommandPublisher, device_id: str,
                        settings: DeviceSettingsIn, *, actor: str) -> UUID | None:
    """Audit and send a ``config_update`` of the given settings; its id (None: nothing given)."""
    await _known(db, device_id)
    update = settings.update()
    if not update:
        return None
    command = ConfigUpdateCommand(device_id=device_id, issued_at=utc_now(), config=update)
    async with db.transaction() as tx:
        await audit(tx, actor, CONFIG_ACTION, f"device:{device_id}",
                    json.dumps({"command_id": str(command.command_id), "config": update},
                               ensure_ascii=False))
    publisher.publish(command_topic(device_id, command.name), encode(command), qos=1)
    return command.command_id


async def last_command(db: Database, device_id: str, action: str) -> CommandStatus | None:
    """The latest ``action`` request for the device and whether it was taken."""
    entry = await db.fetch_one(
        "SELECT at, actor, detail FROM audit_log WHERE action = ? AND subject = ? "
        "ORDER BY id DESC LIMIT 1", (action, f"device:{device_id}"))
    if entry is None:
        return None
    detail = json.loads(str(entry["detail"]))
    state, reason = await command_ack_state(db, device_id, detail["command_id"])
    return CommandStatus(at=str(entry["at"]), actor=str(entry["actor"]),
                         command_id=detail["command_id"], state=state, reason=reason,
                         detail=detail)


async def requested_snapshot(db: Database, device_id: str) -> str | None:
    """Event id of the newest snapshot the device sent in answer to a ``snapshot`` command."""
    row = await db.fetch_one(
        "SELECT e.event_id FROM events e JOIN snapshots s ON s.event_id = e.event_id "
        "AND s.device_id = e.device_id WHERE e.device_id = ? AND e.type = 'command_ack' "
        "ORDER BY e.id DESC LIMIT 1", (device_id,))
    return None if row is None else str(row["event_id"])


async def requested_snapshot_jpeg(db: Database, device_id: str, event_id: str) -> bytes | None:
    """The JPEG answering a snapshot request (the device's own acknowledgement's picture)."""
    row = await db.fetch_one(
        "SELECT s.jpeg FROM snapshots s JOIN events e ON e.event_id = s.event_id "
        "AND e.device_id = s.device_id WHERE s.event_id = ? AND e.device_id = ? "
        "AND e.type = 'command_ack'", (event_id, device_id))
    return None if row is None else bytes(row["jpeg"])

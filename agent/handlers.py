"""Commands from the server, each answered with a durable :class:`CommandAck`.

* ``arm`` / ``disarm``: persisted in ``state.json``; the server publishes them
  retained, so a rebooted device learns its state on connecting. A command id
  already applied (the retained copy delivered again) is not applied or
  acknowledged twice.
* ``snapshot``: the latest frame as JPEG on the snapshot topic, referencing
  the ack's event id (while disarmed it is sent but not kept on the device).
* ``config_update``: validated and applied all or nothing (:mod:`agent.commands`).
* ``ping``: answered at once; commissioning uses it to prove the round trip.
  Its ``issued_at`` (the server's clock) gives the device's clock offset.
* ``checkin``: acknowledged at once, then the chime and the watch run
  (:mod:`agent.checkin`), whose outcome is an event of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol
from uuid import UUID, uuid4

from agent.camera import CameraPipeline
from agent.commands import apply_config_update
from agent.recorder import Recorder
from agent.state import DeviceState
from broker.messages import CheckinCommand, Command, CommandAck, ConfigUpdateCommand, utc_now
from firmware_config.device_config import DeviceConfig
from ground.errors import DoorwatchError
from ground.logs import get_logger

__all__ = ["CommandHandlers", "CommandTarget"]

log = get_logger(__name__)


class CommandTarget(Protocol):
    """What command handling may see and change of the agent, and nothing more."""

    clock_offset_s: float | None

    @property
    def device_id(self) -> str:
        """This device's id."""
        ...

    @property
    def config(self) -> DeviceConfig:
        """The configuration in force."""
        ...

    @property
    def state(self) -> DeviceState:
        """Armed or not, and the command ids already applied (persisted)."""
        ...

    @property
    def recorder(self) -> Recorder:
        """Where acknowledgements are recorded durably."""
        ...

    @property
    def camera(self) -> CameraPipeline | None:
        """The camera, if the device has one."""
        ...

    async def publish_snapshots(self, event_id: UUID, jpegs: list[bytes], *,
                                keep: bool) -> int:
        """Send ``jpegs`` as evidence of ``event_id``; keep them on the device if ``keep``."""
        ...

    def apply_config(self, new: DeviceConfig) -> None:
        """Switch the running device to configuration ``new``."""
        ...

    def start_checkin(self, command: CheckinCommand) -> tuple[bool, str | None]:
        """Begin a presence check-in in the background: (started, note for the ack)."""
        ...


class CommandHandlers:
    """Applies commands to an agent and acknowledges them."""

    def __init__(self, agent: CommandTarget):
        self._agent = agent
        self.pings: asyncio.Queue[Command] = asyncio.Queue()

    async def handle(self, command: Command) -> None:
        """Apply ``command`` (once) and record its ack."""
        agent = self._agent
        command_id = str(command.command_id)
        if agent.state.seen(command_id):
            log.debug("command already applied", extra={"device_id": agent.device_id,
                                                        "command_id": command_id})
            return
        agent.clock_offset_s = round((utc_now() - command.issued_at).total_seconds(), 3)
        ack_id = uuid4()
        try:
            ok, reason, after = await self._apply(command, ack_id)
        except Exception as exc:
            log.exception("command failed", extra={"device_id": agent.device_id,
                                                   "command": command.name})
            ok, reason, after = False, f"internal error: {exc}", None
        agent.state.remember(command_id)
        log.info("command", extra={"device_id": agent.device_id, "command": command.name,
                                   "command_id": command_id, "ok": ok, "reason": reason})
        at = utc_now()
        await agent.recorder.record(lambda s: CommandAck(
            device_id=agent.device_id, seq=s, event_id=ack_id, time=at,
            command_id=command.command_id, command=command.name, ok=ok,
            reason=reason[:2000] if reason else None))
        if after is not None:
            await after()
        if command.name == "ping":
            self.pings.put_nowait(command)

    async def _apply(self, command: Command, ack_id: Any) -> tuple[bool, str | None, Any]:
        agent = self._agent
        if command.name in ("arm", "disarm"):
            await asyncio.to_thread(agent.state.set_armed, command.name == "arm")
            return True, None, None
        if command.name == "ping":
            return True, None, None
        if command.name == "rotate_credentials":
            # agent/link.py stored the new password before handing the command on;
            # this acknowledgement tells the server it may switch the broker.
            return True, None, None
        if isinstance(command, ConfigUpdateCommand):
            try:
                new = await asyncio.to_thread(apply_config_update, agent.config,
                                              command.config)
            except DoorwatchError as exc:
                return False, str(exc), None
            agent.apply_config(new)
            return True, None, None
        if command.name == "snapshot":
            return await self._snapshot(ack_id)
        if isinstance(command, CheckinCommand):
            return await self._checkin(command)
        return False, f"command {command.name!r} is not supported by this agent", None

    async def _checkin(self, command: CheckinCommand) -> tuple[bool, str | None, Any]:
        agent = self._agent
        if agent.camera is None:
            return False, "no camera on this device", None
        async def start() -> None:  # after the ack is recorded: the outcome event follows it
            agent.start_checkin(command)

        note = None if agent.config.chime.fitted else "no chime fitted: silent check-in"
        return True, note, start

    async def _snapshot(self, ack_id: Any) -> tuple[bool, str | None, Any]:
        agent = self._agent
        if agent.camera is None:
            return False, "no camera on this device", None
        try:
            jpeg = await asyncio.to_thread(agent.camera.latest_jpeg,
                                           agent.config.evidence.jpeg_quality)
        except DoorwatchError as exc:
            return False, str(exc), None

        async def send() -> None:
            await agent.publish_snapshots(ack_id, [jpeg], keep=agent.state.armed)

        return True, None, send

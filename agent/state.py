"""Small persistent device state that must survive a reboot: armed or not, and
the ids of the last commands applied (a retained arm/disarm is delivered again
on every reconnect and must not be acknowledged twice)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ground.logs import get_logger

__all__ = ["DeviceState"]

log = get_logger(__name__)

_REMEMBERED_COMMANDS = 50


class DeviceState:
    """``state.json`` in the data folder, replaced atomically."""

    def __init__(self, path: Path, armed_default: bool):
        self._path = path
        self.armed = armed_default
        self.seen_commands: list[str] = []
        self.write_error: str | None = None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.armed = bool(data["armed"])
            self.seen_commands = [str(c) for c in data.get("seen_commands", [])]
        except (OSError, KeyError, ValueError, TypeError):
            pass

    def set_armed(self, armed: bool) -> None:
        """Change and persist the armed flag."""
        self.armed = armed
        self._save()

    def seen(self, command_id: str) -> bool:
        """Whether the command was applied already."""
        return command_id in self.seen_commands

    def remember(self, command_id: str) -> None:
        """Note an applied command (the last few are kept)."""
        self.seen_commands = [*self.seen_commands, command_id][-_REMEMBERED_COMMANDS:]
        self._save()

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        data = json.dumps({"armed": self.armed, "seen_commands": self.seen_commands})
        try:
            # A Pi loses power, not just the process: the new contents must be on the
            # card before the rename makes them the state, and the rename itself must
            # be on the card before we rely on it (tests/agent/test_power_cut.py).
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
            _fsync_dir(self._path.parent)
            self.write_error = None
        except OSError as exc:
            # A read-only or full disk: keep the state in memory, report it in heartbeats.
            self.write_error = str(exc)
            log.error("device state not saved", extra={"path": str(self._path),
                                                       "reason": str(exc)})


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory holds the name)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Small persistent device state (armed or not) that must survive a reboot."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["DeviceState"]


class DeviceState:
    """Armed flag stored in ``state.json`` in the data folder, replaced atomically."""

    def __init__(self, path: Path, armed_default: bool):
        self._path = path
        self.armed = armed_default
        try:
            self.armed = bool(json.loads(path.read_text(encoding="utf-8"))["armed"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            pass

    def set_armed(self, armed: bool) -> None:
        """Change and persist the armed flag."""
        self.armed = armed
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"armed": armed}), encoding="utf-8")
        os.replace(tmp, self._path)

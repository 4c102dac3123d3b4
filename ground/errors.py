"""The root error type of doorwatch.

Every error we raise on purpose derives from :class:`DoorwatchError` and also
from the built-in it behaves like, so callers can catch either (the way
gpiozero's ``exc.py`` does). Errors carry the facts they are about (device id,
topic, file) as attributes, not only inside the message.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "DoorwatchError",
    "HardwareError",
    "PayloadError",
    "StorageError",
]


class DoorwatchError(Exception):
    """Base of every error doorwatch raises on purpose."""


class ConfigError(DoorwatchError, ValueError):
    """A configuration file or value is wrong; names the file and the field."""

    def __init__(self, message: str, *, path: Path | str | None = None, field: str | None = None):
        self.path = Path(path) if path is not None else None
        self.field = field
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if field:
                where += f" [{field}]"
            where += ": "
        elif field:
            where = f"[{field}]: "
        super().__init__(f"{where}{message}")


class PayloadError(DoorwatchError, ValueError):
    """A wire message did not validate; carries the topic and the reason."""

    def __init__(self, reason: str, *, topic: str | None = None, device_id: str | None = None):
        self.reason = reason
        self.topic = topic
        self.device_id = device_id
        super().__init__(f"{topic or '?'}: {reason}")


class HardwareError(DoorwatchError, RuntimeError):
    """A camera, pin or other device could not be used."""

    def __init__(self, message: str, *, device: str | None = None):
        self.device = device
        super().__init__(message if device is None else f"{device}: {message}")


class StorageError(DoorwatchError, OSError):
    """A database or file store could not be read or written."""

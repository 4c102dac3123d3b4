"""Errors of the domain layer: each names what it is about."""

from __future__ import annotations

from ground.errors import DoorwatchError

__all__ = ["InvalidChangeError", "NotFoundError", "UnknownDeviceError"]


class NotFoundError(DoorwatchError, LookupError):
    """No ``kind`` with this id (household 7, worker 3, device door-101, ...)."""

    def __init__(self, kind: str, ident: object):
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class UnknownDeviceError(NotFoundError):
    """A device id the server never registered: never provisioned, or mistyped.

    Its own type so every command and page that takes a device id can answer
    with the same catalogue message (``cli.device_unknown`` /
    ``web.error.device_unknown``) instead of "not found".
    """

    def __init__(self, device_id: str):
        super().__init__("device", device_id)
        self.device_id = device_id


class InvalidChangeError(DoorwatchError, ValueError):
    """A change the current state does not allow (acknowledging a resolved incident, ...).

    ``reason`` is a short stable key (``not_open``, ``already_resolved``, ...) the
    dashboard can map to a catalogue message.
    """

    def __init__(self, kind: str, ident: object, reason: str, detail: str = ""):
        self.kind = kind
        self.ident = ident
        self.reason = reason
        super().__init__(f"{kind} {ident}: {reason}" + (f" ({detail})" if detail else ""))

"""Errors of the domain layer: each names what it is about."""

from __future__ import annotations

from ground.errors import DoorwatchError

__all__ = ["InvalidChangeError", "NotFoundError"]


class NotFoundError(DoorwatchError, LookupError):
    """No ``kind`` with this id (household 7, worker 3, device door-101, ...)."""

    def __init__(self, kind: str, ident: object):
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


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

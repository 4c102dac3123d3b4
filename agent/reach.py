"""Say when the broker cannot be reached: at the first failure, then less and less often.

paho retries a failed connection quietly (its ``on_connect_fail`` callback carries
no error, and its own log is off), so an agent started while the broker was down
logged nothing at all: an operator looking at 3 a.m. saw no reason why the device
was silent. The link reports every failed attempt here; the operator gets the
first at once, a reminder after a minute, then at doubling intervals up to one
every 15 minutes (a line per retry would bury everything else), and a line when
the broker is finally reached saying how long it was not.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ground.logs import get_logger

__all__ = ["BrokerReach", "current_error"]

log = get_logger(__name__)

FIRST_REMINDER_S = 60.0
MAX_REMINDER_S = 900.0


def current_error() -> str:
    """The exception being handled, for a log line (paho's ``on_connect_fail`` has none).

    paho calls ``on_connect_fail`` inside its ``except OSError`` around the connect,
    so the exception is still the one being handled there.
    """
    exc = sys.exc_info()[1]
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}"


class BrokerReach:
    """Counts failed connection attempts of one device and logs them sparingly."""

    def __init__(self, device_id: str, *, clock: Callable[[], float] = time.monotonic,
                 first_reminder_s: float = FIRST_REMINDER_S,
                 max_reminder_s: float = MAX_REMINDER_S):
        self.device_id = device_id
        self._clock = clock
        self._first_reminder_s = first_reminder_s
        self._max_reminder_s = max_reminder_s
        # paho's thread reports failures, and on_connect may come on it too; cheap.
        self._lock = threading.Lock()
        self.failures = 0
        self._since = 0.0
        self._gap = first_reminder_s
        self._next_at = 0.0

    def failed(self, broker: str, error: str) -> None:
        """One connection attempt to ``broker`` (host:port) failed with ``error``."""
        with self._lock:
            now = self._clock()
            self.failures += 1
            if self.failures == 1:
                self._since = now
                self._gap = self._first_reminder_s
                message = "cannot reach the broker; events stay in the outbox, retrying"
            elif now >= self._next_at:
                message = "still cannot reach the broker; retrying"
                self._gap = min(self._gap * 2, self._max_reminder_s)
            else:
                return
            self._next_at = now + self._gap
            fields: dict[str, Any] = {
                "device_id": self.device_id, "broker": broker, "error": error,
                "failed_attempts": self.failures,
                "unreachable_s": round(now - self._since, 1),
                "next_report_s": self._gap}
        log.warning(message, extra=fields)

    def reached(self) -> dict[str, Any]:
        """The broker answered: how long it had not (log fields, empty if it always had)."""
        with self._lock:
            if not self.failures:
                return {}
            fields = {"failed_attempts": self.failures,
                      "unreachable_s": round(self._clock() - self._since, 1)}
            self.failures = 0
            return fields

"""systemd service notifications (``Type=notify``): READY, WATCHDOG, STATUS, STOPPING.

Both services (agent and server) run :func:`watchdog_pings` as a named task
of their TaskGroup. The ping is sent *from the event loop*: if the loop hangs
(a blocking call, a deadlock), pings stop and systemd restarts the service
after ``WatchdogSec``. A ``healthy`` callback can withhold pings when a part
that must keep moving has stopped. Outside systemd (no ``NOTIFY_SOCKET``)
every call is a cheap no-op.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from ground.logs import get_logger

__all__ = ["ServiceNotifier", "watchdog_interval", "watchdog_pings"]

log = get_logger(__name__)

# Without systemd's watchdog we still tick (cheaply) so STATUS stays fresh.
_DEFAULT_INTERVAL_S = 10.0


class ServiceNotifier:
    """Thin wrapper over :mod:`sdnotify` that knows whether systemd is listening."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier: object | None = None
        if self.enabled:
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()

    def notify(self, state: str) -> None:
        """Send ``state`` (e.g. ``"READY=1"``); ignored outside systemd."""
        if self._notifier is not None:
            self._notifier.notify(state)  # type: ignore[attr-defined]

    def ready(self, status: str = "running") -> None:
        """Tell systemd that start-up is complete."""
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """Update the one-line status shown by ``systemctl status``."""
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        """Tell systemd that a clean stop has begun."""
        self.notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Half of systemd's ``WatchdogSec`` for this process, or None when not watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 2e6)
    except ValueError:
        return None


async def watchdog_pings(
    notifier: ServiceNotifier,
    *,
    status: Callable[[], str] | None = None,
    healthy: Callable[[], bool] | None = None,
    interval_s: float | None = None,
) -> None:
    """Send READY=1 once, then WATCHDOG=1 every half watchdog period, until cancelled."""
    interval = interval_s or watchdog_interval() or _DEFAULT_INTERVAL_S
    notifier.ready(status() if status else "running")
    try:
        while True:
            if healthy is None or healthy():
                notifier.notify("WATCHDOG=1" + (f"\nSTATUS={status()}" if status else ""))
            else:
                log.error("withholding the systemd watchdog ping: a service part is stuck")
            await asyncio.sleep(interval)
    finally:
        notifier.stopping()

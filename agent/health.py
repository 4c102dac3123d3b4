"""Device health readings: CPU temperature, clock synchronisation, clock jumps.

All readings are best effort: a reading the machine cannot give is ``None``,
never an exception, because a heartbeat must go out even from a sick device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClockJumpWatch", "ClockStatus", "clock_status", "cpu_temperature"]

_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
_TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised


def cpu_temperature(path: Path = _THERMAL) -> float | None:
    """CPU temperature in °C (Raspberry Pi: thermal zone 0), or None."""
    try:
        return int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux); only the leading fields are read.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("padding", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Whether the kernel considers the clock synchronised, and its error estimate."""

    synchronised: bool | None
    max_error_s: float | None
    source: str


def clock_status() -> ClockStatus:
    """Ask the kernel (read-only ``adjtimex``); fall back to systemd-timesyncd's flag file."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
        if state >= 0:
            return ClockStatus(state != _TIME_ERROR, timex.maxerror / 1e6, "adjtimex")
    except (OSError, AttributeError):
        pass
    if _TIMESYNCD_FLAG.exists():
        return ClockStatus(True, None, "timesyncd")
    return ClockStatus(None, None, "unknown")


class ClockJumpWatch:
    """Notices the wall clock stepping relative to the monotonic clock."""

    def __init__(self, threshold_s: float):
        self.threshold_s = threshold_s
        self._wall = time.time()
        self._mono = time.monotonic()

    def check(self) -> float | None:
        """Seconds the wall clock jumped since the last call, if more than the threshold."""
        wall, mono = time.time(), time.monotonic()
        jump = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return jump if abs(jump) > self.threshold_s else None

"""The one way tests wait: poll a condition until it holds or a time limit passes.

Tests wait on conditions, never for fixed times: a loaded CI machine makes any
fixed sleep either too short (flaky) or too long (slow). A fixed sleep stays only
where the test proves that something does *not* happen during a window, and the
line says so.

``wait_until`` / ``wait_until_async`` fail the test with :class:`WaitTimeoutError`,
whose message names what was waited for, how long, and (``detail``) whatever
explains the miss, such as a process's log. ``poll_until`` / ``poll_until_async``
are the same loop answering True/False, for a test that wants to look at the
state itself after a miss. Every form checks once more after the limit, so a
condition that became true while the last interval passed is not a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["WaitTimeoutError", "poll_until", "poll_until_async", "wait_until", "wait_until_async"]

Detail = Callable[[], object] | None


class WaitTimeoutError(AssertionError):
    """A waited-for condition did not hold in time (an AssertionError: the test fails)."""


def _timeout(what: str, limit_s: float, last: object, detail: Detail) -> WaitTimeoutError:
    message = f"waited {limit_s:g} s for {what}; last check gave {last!r}"
    if detail is not None:
        message += f"\n{detail()}"
    return WaitTimeoutError(message)


def wait_until(check: Callable[[], Any], what: str, limit_s: float = 20.0, every: float = 0.05,
               *, detail: Detail = None) -> Any:
    """Call ``check()`` every ``every`` s until truthy; return that value.

    After ``limit_s`` seconds raise :class:`WaitTimeoutError` naming ``what`` (and
    ``detail()``, called only then).
    """
    deadline = time.monotonic() + limit_s
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _timeout(what, limit_s, last, detail)
        time.sleep(every)


async def wait_until_async(check: Callable[[], Awaitable[Any] | Any], what: str,
                           limit_s: float = 20.0, every: float = 0.05,
                           *, detail: Detail = None) -> Any:
    """:func:`wait_until` without blocking the event loop.

    ``check`` may be a plain function or return an awaitable (a coroutine).
    """
    deadline = time.monotonic() + limit_s
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _timeout(what, limit_s, last, detail)
        await asyncio.sleep(every)


def poll_until(check: Callable[[], object], limit_s: float = 20.0, every: float = 0.05) -> bool:
    """Whether ``check()`` became truthy within ``limit_s`` seconds (no failure on a miss)."""
    try:
        wait_until(check, "a condition", limit_s, every)
    except WaitTimeoutError:
        return False
    return True


async def poll_until_async(check: Callable[[], Awaitable[object] | object],
                           limit_s: float = 20.0, every: float = 0.05) -> bool:
    """Whether ``check()`` became truthy within ``limit_s`` seconds, never blocking the loop."""
    try:
        await wait_until_async(check, "a condition", limit_s, every)
    except WaitTimeoutError:
        return False
    return True

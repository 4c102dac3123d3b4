"""The one way tests wait: poll a condition until it holds or a time limit passes.

Tests wait on conditions, never for fixed times: a loaded CI machine makes any
fixed sleep either too short (flaky) or too long (slow). Both helpers check
once more after the limit, so a condition that became true while the last
interval passed is not reported as a timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["poll_until", "poll_until_async"]


def poll_until(check: Callable[[], object], limit_s: float = 20.0, every: float = 0.05) -> bool:
    """Call ``check()`` every ``every`` seconds until it is truthy or ``limit_s`` seconds pass."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())


async def poll_until_async(check: Callable[[], Awaitable[object] | object],
                           limit_s: float = 20.0, every: float = 0.05) -> bool:
    """Check every ``every`` seconds, never blocking the loop, until ``check()`` is truthy.

    ``check`` may be a plain function or return an awaitable (a coroutine).
    """

    async def holds() -> bool:
        result = check()
        return bool(await result if inspect.isawaitable(result) else result)

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await holds():
            return True
        await asyncio.sleep(every)
    return await holds()

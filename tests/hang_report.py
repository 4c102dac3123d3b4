"""Which coroutine a hung test waits on: asyncio's tasks, printed before pytest-timeout fires.

pytest-timeout dumps every thread's stack, but a test stuck in an event loop shows
only the loop's ``select``: the coroutine it waits on is invisible. A timer started
with each test prints every running loop's tasks with their stacks shortly before
the timeout, into the test's captured output (CI, session 9: one such hang, in a
server's shutdown or the test body, could not be placed from the thread dump).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

__all__ = ["start_hang_report"]

_EARLY_S = 20.0  # before pytest-timeout's own dump, so both are in the report


def _report(test: str) -> None:
    # Read from another thread on purpose: the loop is stuck, so it cannot report itself.
    # all_tasks() on a foreign loop may race with it; a diagnostic accepts that.
    loops = [o for o in gc.get_objects()
             if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    print(f"\n+++ {test}: still running; asyncio tasks of {len(loops)} running loop(s) +++",
          file=sys.stderr)
    for loop in loops:
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()


def start_hang_report(test: str, timeout_s: float) -> threading.Timer | None:
    """Start a daemon timer that reports ``test``'s asyncio tasks if it is still running
    ``_EARLY_S`` before ``timeout_s``; cancel it when the test ends. None without a timeout."""
    if timeout_s <= _EARLY_S:
        return None
    timer = threading.Timer(timeout_s - _EARLY_S, _report, args=(test,))
    timer.daemon = True
    timer.start()
    return timer

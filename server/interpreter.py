"""The server process's interpreter settings, in this one place.

Called once when ``doorwatch server run`` starts serving; nothing else in the
server sets the garbage collector or the GIL switch interval. The figures behind
these values are in ``bench/NOTES.md`` ("Interpreter settings").
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GIL_SWITCH_INTERVAL_S", "tune_interpreter"]

# How long a thread may hold the GIL while another waits for it.
GIL_SWITCH_INTERVAL_S = 0.00002


def tune_interpreter() -> None:
    """Collect cycles less often, never rescan start-up objects, hand the GIL over sooner.

    Garbage collector: each ingested event leaves a dozen short-lived containers
    (model, dicts, tuples); with CPython's default threshold (700) a batch of
    messages runs the collector dozens of times, each walking the survivors too.
    Nothing on the ingest path makes reference cycles (they would be collected all
    the same, only later). ``freeze`` moves what start-up built (modules, FastAPI,
    Apprise's plugins) out of every future collection.

    GIL: ingest keeps two threads busy, the event loop's (MQTT packets,
    validation) and SQLite's (each batch's transaction), and the notification
    sender works on threads beside them. Each time SQLite's thread leaves C code it
    needs the GIL back and waits up to the switch interval behind the event loop;
    with the default 5 ms the threads alternate instead of overlapping, and a
    notification waits in 5 ms slices, so ingest rate and door-to-phone latency
    both depend on a short interval.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

"""Migration 59: why a check-in whose device saw somebody go out is not a missed one.

``checkins.context``: ``leave`` or ``visit`` when the exit during the check-in
was allowed (a permitted leave, a registered visitor leaving), ``handover`` or
``reentry`` when the breach that took the check-in was withdrawn by the
episode's verdict (server/domain/checkins.py). NULL otherwise.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE checkins ADD COLUMN context TEXT",
]

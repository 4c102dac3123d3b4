"""Migration 60: when a late exit's breach took a check-in already settled as missed.

A device that was offline delivers its exit after the check-in's deadline and
grace, when the check-in has already opened its own ``missed_checkin``
incident. The breach then takes that incident over (it becomes the breach, one
incident for one person going out: server/domain/checkins.py,
:func:`take_missed`) and ``checkins.taken_late_at`` records when, so its
notifications and page say that the earlier missed-check-in alert was the same
event. NULL otherwise.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE checkins ADD COLUMN taken_late_at TEXT",
]

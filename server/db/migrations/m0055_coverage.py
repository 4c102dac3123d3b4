"""Migration 55: monitoring coverage (issue 19 item 4).

``coverage_spells`` holds, per household, the periods it was armed
(``part = 'armed'``) and the blind spells in which one part of its watch was
not verified (``device``, ``link``, ``camera``, ``door_sensor``), as the
device watch observes them (server/domain/coverage.py). At most one open
spell per household and part: several server instances record it once.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE coverage_spells (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        part TEXT NOT NULL,
        device_id TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        reason TEXT
    )""",
    "CREATE UNIQUE INDEX coverage_spells_open ON coverage_spells (household_id, part) "
    "WHERE ended_at IS NULL",
    "CREATE INDEX coverage_spells_household ON coverage_spells (household_id, started_at)",
]

"""Migration 57: presence check-ins (issue 19 item 2).

One row per check-in asked of a device: who asked (a worker, or the schedule),
the window, when the command went out, the device's outcome, and the
missed-check-in incident if one was opened.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE checkins (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        device_id TEXT NOT NULL,
        command_id TEXT NOT NULL UNIQUE,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        window_s REAL NOT NULL,
        deadline_at TEXT NOT NULL,
        published_at TEXT,
        outcome TEXT,
        outcome_at TEXT,
        incident_id {bigint} REFERENCES incidents(id)
    )""",
    "CREATE INDEX checkins_household ON checkins (household_id, requested_at)",
    "CREATE INDEX checkins_open ON checkins (outcome, deadline_at)",
]

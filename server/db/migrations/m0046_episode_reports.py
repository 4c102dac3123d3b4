"""Migration 46: early exits and their verdicts (wire v2 episode reports); crossing times.

A device reports an exit as soon as its camera is confident (``report =
'early'``) and the episode's verdict when the door has closed (``report =
'final'``, same ``episode_id``). ``episode_reports`` ties both to the one
incident the early report opened, whichever arrives first, so the verdict
updates that incident and never opens a second one. ``incidents.crossed_at``
is when the person crossed the threshold (what the worker is told), which may
be well before the incident opened.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE episode_reports (
        device_id TEXT NOT NULL,
        episode_id TEXT NOT NULL,
        incident_id {bigint} REFERENCES incidents(id),
        opened INTEGER NOT NULL DEFAULT 0,
        early_row_id {bigint},
        final_row_id {bigint},
        verdict TEXT,
        detail TEXT,
        PRIMARY KEY (device_id, episode_id)
    )""",
    "ALTER TABLE incidents ADD COLUMN crossed_at TEXT",
    "ALTER TABLE incidents ADD COLUMN verdict TEXT",
]

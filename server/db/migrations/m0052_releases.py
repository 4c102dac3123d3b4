"""Migration 52: release records (who ended a quarantine, when, how; until when data is kept)."""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE releases (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        released_at TEXT NOT NULL,
        released_by TEXT NOT NULL,
        outcome TEXT NOT NULL,
        note TEXT,
        planned_end TEXT,
        retain_until TEXT
    )""",
    "CREATE INDEX releases_household ON releases (household_id, released_at)",
]

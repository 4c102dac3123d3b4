"""Migration 53: grouped offline incidents (alert storms) and silenced households.

``households.building`` names the building a household is in, so the devices
of one building that go offline together (a power cut) become one grouped
incident (``incidents.group_id`` points members at it; ``group_key`` says
which building or grid it is about). ``household_silences`` holds a
household's silences (reason, expiry, who, lifted); an incident opened while
one applies keeps its id in ``incidents.silence_id`` and notifies nobody.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE households ADD COLUMN building TEXT",
    "ALTER TABLE incidents ADD COLUMN group_id {bigint}",
    "ALTER TABLE incidents ADD COLUMN group_key TEXT",
    "ALTER TABLE incidents ADD COLUMN silence_id {bigint}",
    "CREATE INDEX incidents_group ON incidents (group_id)",
    "CREATE INDEX incidents_kind_opened ON incidents (kind, opened_at)",
    """CREATE TABLE household_silences (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        reason TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        include_breaches INTEGER NOT NULL DEFAULT 0,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        lifted_at TEXT,
        lifted_by TEXT
    )""",
    "CREATE INDEX household_silences_household ON household_silences (household_id, ends_at)",
]

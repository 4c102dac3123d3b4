"""Migration 51: expected visits (registration, planned events) and the visitor context of a breach.

``visits`` holds a worker's registration (who, organisation, purpose, window,
stay limit) and what happened in it (entries, exits, handovers counted, the
overstay incident); ``visit_events`` links the events logged as planned.
``incidents.visitor_context`` is JSON saying, for a breach that followed an
unregistered entry, how long before the visitor came in and how many came in
and went out since the household was last seen complete.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE visits (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        visitor TEXT NOT NULL,
        organisation TEXT,
        purpose TEXT NOT NULL,
        stay_limit_s INTEGER,
        registered_by TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        state TEXT NOT NULL,
        entries INTEGER NOT NULL DEFAULT 0,
        exits INTEGER NOT NULL DEFAULT 0,
        handovers INTEGER NOT NULL DEFAULT 0,
        inside_since TEXT,
        incident_id {bigint} REFERENCES incidents(id),
        cancelled_at TEXT,
        cancelled_by TEXT
    )""",
    "CREATE INDEX visits_household ON visits (household_id, starts_at)",
    "CREATE INDEX visits_inside ON visits (state, inside_since)",
    """CREATE TABLE visit_events (
        visit_id {bigint} NOT NULL REFERENCES visits(id),
        event_row_id {bigint} NOT NULL REFERENCES events(id),
        role TEXT NOT NULL,
        PRIMARY KEY (visit_id, event_row_id)
    )""",
    "CREATE INDEX visit_events_event ON visit_events (event_row_id)",
    "ALTER TABLE incidents ADD COLUMN visitor_context TEXT",
]

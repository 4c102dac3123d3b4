"""Migration 56: grid reports (issue 19 item 5).

A generated report (daily or weekly, per grid and language) is kept with its
PDF so the notification that announces it can attach exactly what was
generated, and a link to it stays valid.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE reports (
        id {pk},
        grid_id {bigint} NOT NULL REFERENCES grids(id),
        kind TEXT NOT NULL,
        first_day TEXT NOT NULL,
        days INTEGER NOT NULL,
        language TEXT NOT NULL,
        created_at TEXT NOT NULL,
        pdf {blob} NOT NULL
    )""",
    "CREATE INDEX reports_grid ON reports (grid_id, first_day)",
    "ALTER TABLE notifications ADD COLUMN report_id {bigint} REFERENCES reports(id)",
]

"""Migration 49: per-grid duty roster and the escalation ladder that follows it.

A shift says who is on duty in a grid on which weekdays between which local
times, and who backs them up. When an incident's first alert is queued, the
roster picks its first responder and backup (``responder_id``/``backup_id``);
``backup_at`` is the persisted deadline for telling the backup, claimed with a
conditional UPDATE like ``remind_at``/``escalate_at``.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE duty_shifts (
        id {pk},
        grid_id {bigint} NOT NULL REFERENCES grids(id),
        worker_id {bigint} NOT NULL REFERENCES workers(id),
        backup_id {bigint} REFERENCES workers(id),
        days TEXT NOT NULL,
        starts TEXT NOT NULL,
        ends TEXT NOT NULL,
        notes TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT
    )""",
    "CREATE INDEX duty_shifts_grid ON duty_shifts (grid_id)",
    "ALTER TABLE incidents ADD COLUMN responder_id {bigint}",
    "ALTER TABLE incidents ADD COLUMN backup_id {bigint}",
    "ALTER TABLE incidents ADD COLUMN backup_at TEXT",
    "ALTER TABLE incidents ADD COLUMN backup_notified_at TEXT",
    "CREATE INDEX incidents_backup ON incidents (state, backup_at)",
]

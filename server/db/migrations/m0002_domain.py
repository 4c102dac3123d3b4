"""Migration 2: the people and places of a quarantine programme.

Grids, households' quarantine periods and members, device assignment history
(a replaced device keeps the household's history, and events remember their
household), permitted leaves and daily follow-ups.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE grids (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        supervisor_id {bigint} REFERENCES workers(id),
        notes TEXT,
        created_at TEXT NOT NULL
    )""",
    "ALTER TABLE workers ADD COLUMN grid_id {bigint} REFERENCES grids(id)",
    "ALTER TABLE workers ADD COLUMN active INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE workers ADD COLUMN updated_at TEXT",
    "ALTER TABLE households ADD COLUMN grid_id {bigint} REFERENCES grids(id)",
    "ALTER TABLE households ADD COLUMN members TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE households ADD COLUMN quarantine_start TEXT",
    "ALTER TABLE households ADD COLUMN quarantine_end TEXT",
    "ALTER TABLE households ADD COLUMN notes TEXT",
    "ALTER TABLE households ADD COLUMN ended_early_at TEXT",
    "ALTER TABLE households ADD COLUMN purged_at TEXT",
    "ALTER TABLE households ADD COLUMN updated_at TEXT",
    "CREATE INDEX households_grid ON households (grid_id)",
    "CREATE INDEX households_worker ON households (worker_id)",
    # The retained arm/disarm command a device should have, and whether it went out.
    "ALTER TABLE devices ADD COLUMN arm_command TEXT",
    "ALTER TABLE devices ADD COLUMN arm_command_at TEXT",
    "ALTER TABLE devices ADD COLUMN arm_published_at TEXT",
    # Set while a device-offline incident for the current outage exists.
    "ALTER TABLE devices ADD COLUMN offline_incident_id {bigint}",
    "ALTER TABLE devices ADD COLUMN notes TEXT",
    """CREATE TABLE device_assignments (
        id {pk},
        device_id TEXT NOT NULL REFERENCES devices(device_id),
        household_id {bigint} NOT NULL REFERENCES households(id),
        assigned_at TEXT NOT NULL,
        unassigned_at TEXT,
        reason TEXT
    )""",
    "CREATE INDEX device_assignments_household ON device_assignments (household_id, assigned_at)",
    "CREATE INDEX device_assignments_device ON device_assignments (device_id, assigned_at)",
    "ALTER TABLE events ADD COLUMN household_id {bigint}",
    "CREATE INDEX events_household ON events (household_id, device_time)",
    """CREATE TABLE leaves (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        state TEXT NOT NULL,
        exited_at TEXT,
        returned_at TEXT,
        incident_id {bigint} REFERENCES incidents(id),
        created_at TEXT NOT NULL,
        cancelled_at TEXT
    )""",
    "CREATE INDEX leaves_household ON leaves (household_id, starts_at)",
    "CREATE INDEX leaves_due ON leaves (state, ends_at)",
    """CREATE TABLE followups (
        id {pk},
        household_id {bigint} NOT NULL REFERENCES households(id),
        day TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        temperatures TEXT NOT NULL DEFAULT '{{}}',
        symptoms TEXT,
        note TEXT
    )""",
    "CREATE INDEX followups_household ON followups (household_id, day)",
]

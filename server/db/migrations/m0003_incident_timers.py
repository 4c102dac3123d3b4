"""Migration 3: persisted escalation and reminder deadlines, warnings, scheduled jobs.

Every timer is a column with a due time, never an in-memory sleep, so a
restarted (or a second) server instance picks up exactly where work was left.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE incidents ADD COLUMN escalate_at TEXT",
    "ALTER TABLE incidents ADD COLUMN escalated_at TEXT",
    "ALTER TABLE incidents ADD COLUMN remind_at TEXT",
    "ALTER TABLE incidents ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE incidents ADD COLUMN leave_id {bigint}",
    "ALTER TABLE incidents ADD COLUMN detail TEXT",
    "CREATE INDEX incidents_escalate ON incidents (state, escalate_at)",
    "CREATE INDEX incidents_remind ON incidents (state, remind_at)",
    "CREATE INDEX incidents_opened ON incidents (opened_at)",
    # alert (first notice), reminder (to the worker), escalation (to the supervisor).
    "ALTER TABLE notifications ADD COLUMN purpose TEXT NOT NULL DEFAULT 'alert'",
    "CREATE INDEX notifications_incident ON notifications (incident_id)",
    "ALTER TABLE seq_gaps ADD COLUMN warned_at TEXT",
    """CREATE TABLE warnings (
        id {pk},
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        device_id TEXT,
        household_id {bigint},
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX warnings_at ON warnings (at)",
    "CREATE INDEX audit_log_at ON audit_log (at)",
    """CREATE TABLE scheduled_jobs (
        job TEXT PRIMARY KEY,
        next_run_at TEXT NOT NULL,
        last_run_at TEXT,
        last_run_by TEXT,
        last_result TEXT
    )""",
]

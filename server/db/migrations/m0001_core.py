"""Migration 1: the end-to-end path: who is watched, what devices said, what we did about it."""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE workers (
        id {pk},
        name TEXT NOT NULL,
        phone TEXT,
        language TEXT NOT NULL DEFAULT 'zh_CN',
        role TEXT NOT NULL DEFAULT 'worker',
        apprise_urls TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE households (
        id {pk},
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        worker_id {bigint} REFERENCES workers(id),
        armed INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        household_id {bigint} REFERENCES households(id),
        registered_at TEXT NOT NULL,
        max_seq {bigint} NOT NULL DEFAULT 0,
        status TEXT,
        status_at TEXT,
        last_heartbeat_at TEXT,
        last_heartbeat TEXT
    )""",
    """CREATE TABLE events (
        id {pk},
        device_id TEXT NOT NULL,
        seq {bigint} NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        kind TEXT,
        device_time TEXT NOT NULL,
        received_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (device_id, seq)
    )""",
    "CREATE INDEX events_received_at ON events (received_at)",
    """CREATE TABLE seq_gaps (
        id {pk},
        device_id TEXT NOT NULL,
        first_seq {bigint} NOT NULL,
        last_seq {bigint} NOT NULL,
        detected_at TEXT NOT NULL
    )""",
    "CREATE INDEX seq_gaps_device ON seq_gaps (device_id, first_seq)",
    """CREATE TABLE rejected_messages (
        id {pk},
        received_at TEXT NOT NULL,
        topic TEXT NOT NULL,
        device_id TEXT,
        reason TEXT NOT NULL,
        payload {blob},
        payload_size INTEGER NOT NULL
    )""",
    """CREATE TABLE incidents (
        id {pk},
        household_id {bigint} REFERENCES households(id),
        device_id TEXT,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        acknowledged_at TEXT,
        acknowledged_by TEXT,
        resolved_at TEXT,
        resolved_by TEXT,
        outcome TEXT,
        note TEXT
    )""",
    "CREATE INDEX incidents_household_state ON incidents (household_id, state)",
    """CREATE TABLE incident_events (
        incident_id {bigint} NOT NULL REFERENCES incidents(id),
        event_row_id {bigint} NOT NULL REFERENCES events(id),
        PRIMARY KEY (incident_id, event_row_id)
    )""",
    """CREATE TABLE notifications (
        id {pk},
        incident_id {bigint} REFERENCES incidents(id),
        worker_id {bigint} REFERENCES workers(id),
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        claimed_until TEXT,
        claimed_by TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT
    )""",
    "CREATE INDEX notifications_due ON notifications (state, next_attempt_at)",
    """CREATE TABLE notification_attempts (
        id {pk},
        notification_id {bigint} NOT NULL REFERENCES notifications(id),
        at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT
    )""",
    """CREATE TABLE snapshots (
        event_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        jpeg {blob} NOT NULL
    )""",
    """CREATE TABLE audit_log (
        id {pk},
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT,
        detail TEXT
    )""",
]

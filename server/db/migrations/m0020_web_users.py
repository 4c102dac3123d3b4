"""Migration 20 (dashboard): login users, their sessions, failed-login backoff, app secrets."""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    # A user logs in to the dashboard. A grid worker's or supervisor's user is
    # linked to their row in ``workers`` (which decides whose households they see).
    """CREATE TABLE users (
        id {pk},
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT 'zh_CN',
        worker_id {bigint} REFERENCES workers(id),
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    # Sessions live in the database, so logout really ends them and several
    # server instances share them; the cookie holds only a random token whose
    # SHA-256 is the key here.
    """CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        user_id {bigint} NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )""",
    "CREATE INDEX web_sessions_user ON web_sessions (user_id)",
    # Failed logins per user name: the backoff survives restarts and is shared.
    """CREATE TABLE login_failures (
        username TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failed_at TEXT NOT NULL,
        locked_until TEXT
    )""",
    # Secrets generated on first start (the cookie signing key), shared by instances.
    """CREATE TABLE web_secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
]

"""Migration 45 (issue 17): failed logins counted per user name *and* source, and per source.

``login_failures`` counted per user name only, so anyone could lock any user
out; ``login_throttle`` replaces it (see ``server.web.throttle``).
``login_stats`` holds monotonic attempt counts by outcome for ``/metrics``,
shared by every server instance.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "DROP TABLE login_failures",
    # key: "user:<name>|<source>" or "source:<address>".
    """CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_failed_at TEXT NOT NULL,
        locked_until TEXT,
        refused {bigint} NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE login_stats (
        outcome TEXT PRIMARY KEY,
        attempts {bigint} NOT NULL DEFAULT 0
    )""",
    "INSERT INTO login_stats (outcome, attempts) VALUES ('success', 0), ('failed', 0), "
    "('throttled', 0)",
]

"""Migration 47: one-tap acknowledge links sent in notifications.

A link is signed (its token names the incident, the worker and a random
nonce) and expires; its row makes it single-use (``used_at``) and says how it
was used. Only the nonce is stored, never the token itself.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE ack_links (
        nonce TEXT PRIMARY KEY,
        incident_id {bigint} NOT NULL REFERENCES incidents(id),
        worker_id {bigint} NOT NULL REFERENCES workers(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        outcome TEXT
    )""",
    "CREATE INDEX ack_links_incident ON ack_links (incident_id)",
]

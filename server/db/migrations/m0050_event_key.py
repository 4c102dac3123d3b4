"""Migration 50: an event_id is kept unique through a 64-bit key, not its text.

The unique index on ``events.event_id`` (migration 41) halved SQLite ingest:
every insert is a random write into an index of 36-character keys. It is
replaced by a unique index on ``(event_key, key_collision)``, integers
(server/db/event_key.py says how the key is made and why a reused event_id is
still never stored twice). Stored rows get their key; the rare row whose key
another, earlier row already has (a copy migration 41 renamed
``<uuid>#dup<id>``, or a true collision) gets its row id as ``key_collision``.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE events ADD COLUMN event_key {bigint} NOT NULL DEFAULT 0",
    "ALTER TABLE events ADD COLUMN key_collision {bigint} NOT NULL DEFAULT 0",
    "UPDATE events SET event_key = {event_key}",
    # A temporary plain index makes the collision search linear, not quadratic.
    "CREATE INDEX events_event_key_scan ON events (event_key)",
    """UPDATE events SET key_collision = id
       WHERE EXISTS (SELECT 1 FROM events e2
                     WHERE e2.event_key = events.event_key AND e2.id < events.id)""",
    "DROP INDEX events_event_key_scan",
    "DROP INDEX events_event_id",
    "CREATE UNIQUE INDEX events_event_key ON events (event_key, key_collision)",
]

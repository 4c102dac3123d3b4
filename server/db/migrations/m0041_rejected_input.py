"""Migration 41: an event_id is stored once; rejected input is bounded and counted.

* ``events.event_id`` becomes unique (issue 17, item 12): the same event_id
  under a new seq was stored twice. A database that already holds such copies
  keeps every row; the later copies' ``event_id`` column gets the suffix
  ``#dup<row id>`` (their payload keeps what the device sent) so the index can
  be built. The ingest path inserts with a target-less ``ON CONFLICT DO
  NOTHING`` and classifies what did not go in (server/ingest/conflicts.py).
* ``rejected_messages.payload_sha256``: the SHA-256 of the whole payload, kept
  when the payload itself is truncated or not kept (server/ingest/rejections.py).
* ``rejected_counts``: per device (``''`` when none is known), every rejection
  ever counted and those past the day's row budget (for /metrics; they survive
  the retention purge of ``rejected_messages``), and the rows and payload bytes
  kept on ``day`` (the per-device budget, shared by every server instance).
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    # A temporary plain index makes the duplicate search linear, not quadratic.
    "CREATE INDEX events_event_id_scan ON events (event_id)",
    """UPDATE events SET event_id = event_id || '#dup' || CAST(id AS TEXT)
       WHERE EXISTS (SELECT 1 FROM events e2
                     WHERE e2.event_id = events.event_id AND e2.id < events.id)""",
    "DROP INDEX events_event_id_scan",
    "CREATE UNIQUE INDEX events_event_id ON events (event_id)",
    "ALTER TABLE rejected_messages ADD COLUMN payload_sha256 TEXT",
    "CREATE INDEX rejected_messages_received_at ON rejected_messages (received_at)",
    """CREATE TABLE rejected_counts (
        device_id TEXT PRIMARY KEY,
        total {bigint} NOT NULL DEFAULT 0,
        unrecorded {bigint} NOT NULL DEFAULT 0,
        day TEXT NOT NULL,
        day_rows {bigint} NOT NULL DEFAULT 0,
        day_bytes {bigint} NOT NULL DEFAULT 0
    )""",
    # The rows already kept are counted (their day's budget starts afresh).
    """INSERT INTO rejected_counts (device_id, total, day)
       SELECT COALESCE(device_id, ''), COUNT(*), '' FROM rejected_messages
       GROUP BY COALESCE(device_id, '')""",
]

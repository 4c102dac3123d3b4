"""Migration 30: drop the index on events.received_at.

No query of the server, the dashboard or retention reads events by arrival
time (they go by household, device and seq, or id), yet every stored event
paid for the index: about 7% of SQLite's insert time per batch, measured on
1,000-event batches. An operator looking at recent arrivals can use ``id``
(rows are numbered in arrival order) or add the index back by hand.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "DROP INDEX IF EXISTS events_received_at",
]

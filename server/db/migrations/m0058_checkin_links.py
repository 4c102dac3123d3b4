"""Migration 58: look check-ins up by their incident and by device and deadline.

A breach of somebody who went out during a presence check-in takes that
check-in (its ``incident_id``): the rules find the check-in in progress on the
exit's device, and every notification of an incident asks whether a check-in
points at it (server/domain/checkins.py). Both would otherwise scan a table
that grows by a row per device per check-in.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "CREATE INDEX checkins_incident ON checkins (incident_id)",
    "CREATE INDEX checkins_device ON checkins (device_id, deadline_at)",
]

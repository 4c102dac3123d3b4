"""Migration 10 (broker security): when a device's broker credentials were revoked or rotated.

A revoked device keeps its row and its history (events, incidents); the
broker refuses it, and the dashboard can show it as revoked.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    "ALTER TABLE devices ADD COLUMN revoked_at TEXT",
    "ALTER TABLE devices ADD COLUMN credentials_rotated_at TEXT",
]

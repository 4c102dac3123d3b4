"""Migration 61: every member grid's duty chain of a grouped offline incident.

A grouped offline incident (server/domain/storms.py) may hold devices of
households in several grids (a building's power cut). Each member grid's
on-duty chain is told once: ``incident_chains`` holds one row per grid (per
household for one without a grid) with the first responder and shift backup
the roster named when that grid was told, so the escalation job tells every
chain's backup and every grid's supervisor, and nobody twice.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE incident_chains (
        id {pk},
        incident_id {bigint} NOT NULL REFERENCES incidents(id),
        grid_id {bigint} REFERENCES grids(id),
        household_id {bigint} NOT NULL REFERENCES households(id),
        responder_id {bigint},
        backup_id {bigint},
        told_at TEXT NOT NULL,
        UNIQUE (incident_id, grid_id)
    )""",
    "CREATE INDEX incident_chains_incident ON incident_chains (incident_id)",
]

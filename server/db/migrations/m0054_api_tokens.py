"""Migration 54: scoped read-only API tokens for the health office (only their hash is kept)."""

from __future__ import annotations

__all__ = ["STATEMENTS"]

STATEMENTS: list[str] = [
    """CREATE TABLE api_tokens (
        id {pk},
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        scopes TEXT NOT NULL,
        grid_id {bigint} REFERENCES grids(id),
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        revoked_by TEXT,
        last_used_at TEXT,
        window_start TEXT,
        window_count INTEGER NOT NULL DEFAULT 0
    )""",
]

"""The audit log: every state change, who made it and when."""

from __future__ import annotations

from ground.timeutil import now_ts
from server.db.base import Transaction

__all__ = ["audit"]


async def audit(
    tx: Transaction, actor: str, action: str, subject: str | None = None, detail: str | None = None
) -> None:
    """Record ``actor`` doing ``action`` to ``subject`` inside the caller's transaction."""
    await tx.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (now_ts(), actor, action, subject, detail),
    )

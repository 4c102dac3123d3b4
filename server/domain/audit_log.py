"""Reading the audit log (who did what, when) and the data-loss/health warnings."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ground.timeutil import to_ts
from server.db.base import Database
from server.domain.common import when

__all__ = ["AuditEntry", "Warning_", "list_audit", "list_warnings"]


class AuditEntry(BaseModel):
    """One audit record."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    detail: str | None


class Warning_(BaseModel):  # noqa: N801 - "Warning" would shadow the built-in
    """A warning for operators (e.g. ``data_loss``: a seq gap that never filled)."""

    id: int
    at: datetime
    kind: str
    device_id: str | None
    household_id: int | None
    detail: str


async def list_audit(
    db: Database, *, subject: str | None = None, actor: str | None = None,
    action_prefix: str | None = None, since: datetime | None = None, limit: int = 500,
) -> list[AuditEntry]:
    """Audit records, newest first (``subject`` like ``incident:7``, ``household:3``)."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if subject is not None:
        where.append("subject = ?")
        params.append(subject)
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if action_prefix is not None:
        where.append("action LIKE ?")
        params.append(action_prefix.replace("%", "") + "%")
    if since is not None:
        where.append("at >= ?")
        params.append(to_ts(since))
    rows = await db.fetch_all(
        f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC "  # noqa: S608
        f"LIMIT {int(limit)}", params,
    )
    return [AuditEntry(id=int(r["id"]), at=when(r["at"]), actor=r["actor"], action=r["action"],
                       subject=r["subject"], detail=r["detail"]) for r in rows]


async def list_warnings(db: Database, *, limit: int = 500) -> list[Warning_]:
    """Warnings, newest first."""
    rows = await db.fetch_all(
        f"SELECT * FROM warnings ORDER BY at DESC, id DESC LIMIT {int(limit)}")  # noqa: S608
    return [Warning_(id=int(r["id"]), at=when(r["at"]), kind=r["kind"], device_id=r["device_id"],
                     household_id=None if r["household_id"] is None else int(r["household_id"]),
                     detail=r["detail"]) for r in rows]

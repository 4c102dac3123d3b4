"""Release at the end of a quarantine: the record of who ended it, when, and how it ended.

Every way a quarantine ends writes one ``releases`` row in the transaction
that ends it: by hand (dashboard, API, ``doorwatch household end-quarantine``:
:func:`server.domain.households.end_quarantine_early`) with the outcome chosen
there, or by the schedule when the period runs out (outcome ``completed``,
actor ``schedule``). The same transaction disarms the household's devices
(the retained ``disarm`` command the agent already obeys, published by the
schedule loop), tells the household's grid worker (``notify.release.*``,
``purpose = release``) and starts the retention clock: ``quarantine_end`` is
the release time, so the retention job purges the household's personal data
``retention.days`` later, the date kept here as ``retain_until``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from ground.i18n import t
from ground.timeutil import from_ts, now_ts, to_ts
from server.config import ServerSettings
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import loads_list, when

__all__ = ["PURPOSE", "Release", "ReleaseContext", "ReleaseOutcome", "list_releases",
           "record_release"]

PURPOSE = "release"


class ReleaseOutcome(StrEnum):
    """How a quarantine ended (keys of ``release.outcome.*`` in the catalogue)."""

    COMPLETED = "completed"
    TESTED_NEGATIVE = "tested_negative"
    HOSPITALISED = "hospitalised"
    TRANSFERRED = "transferred"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ReleaseContext:
    """How long data is kept after a release, and how the worker's notification is written."""

    retention_days: int = 90
    dashboard_url: str = "http://127.0.0.1:8080"
    timezone: str = "Asia/Shanghai"

    @staticmethod
    def of(settings: ServerSettings) -> ReleaseContext:
        """The context the server's settings describe."""
        return ReleaseContext(settings.retention.days, settings.notify.dashboard_url,
                              settings.notify.timezone)


class Release(BaseModel):
    """A release record as stored."""

    id: int
    household_id: int
    released_at: datetime
    released_by: str
    outcome: ReleaseOutcome
    note: str | None
    planned_end: datetime | None
    retain_until: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> Release:
        """Build from a ``releases`` row."""
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            released_at=when(row["released_at"]), released_by=row["released_by"],
            outcome=ReleaseOutcome(row["outcome"]), note=row["note"],
            planned_end=when(row["planned_end"]), retain_until=when(row["retain_until"]))


async def record_release(
    tx: Transaction, household_id: int, *, actor: str, outcome: ReleaseOutcome,
    note: str | None, at: str, planned_end: str | None, context: ReleaseContext,
) -> int:
    """Write the release record, audit it and queue the worker's notification; return its id."""
    retain_until = to_ts(from_ts(at) + timedelta(days=context.retention_days))
    row = await tx.fetch_one(
        "INSERT INTO releases (household_id, released_at, released_by, outcome, note, "
        "planned_end, retain_until) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (household_id, at, actor, outcome.value, note or None, planned_end, retain_until))
    assert row is not None
    release_id = int(row["id"])
    await audit(tx, actor, "household.release", f"household:{household_id}",
                f"release:{release_id} {outcome.value}; retain until {retain_until}"
                + (f"; {note}" if note else ""))
    target = await tx.fetch_one(
        "SELECT h.name, h.address, w.id AS worker_id, w.language, w.apprise_urls "
        "FROM households h JOIN workers w ON w.id = h.worker_id "
        "WHERE h.id = ? AND w.active = 1", (household_id,))
    if target is not None:
        language = str(target["language"])
        zone = ZoneInfo(context.timezone)
        values = {
            "household": target["name"], "address": target["address"], "actor": actor,
            "time": from_ts(at).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "outcome": t(f"release.outcome.{outcome.value}", language),
            "note": note or "-",
            "retain_until": from_ts(retain_until).astimezone(zone).strftime("%Y-%m-%d"),
            "link": f"{context.dashboard_url.rstrip('/')}/households/{household_id}",
        }
        title = t("notify.release.title", language, **values)
        body = t("notify.release.body", language, **values)
        created = now_ts()
        await tx.executemany(
            "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, "
            "attempts, next_attempt_at, created_at, purpose) "
            "VALUES (NULL, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            [(int(target["worker_id"]), url, title, body, created, created, PURPOSE)
             for url in loads_list(str(target["apprise_urls"]))])
    return release_id


async def list_releases(db: Database | Transaction, household_id: int) -> list[Release]:
    """A household's release records, newest first."""
    rows = await db.fetch_all(
        "SELECT * FROM releases WHERE household_id = ? ORDER BY released_at DESC, id DESC",
        (household_id,))
    return [Release.from_row(r) for r in rows]

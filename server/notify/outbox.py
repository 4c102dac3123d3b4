"""Queue notifications for an incident inside the transaction that opened it.

Writing the notification rows in the same transaction as the incident means a
crash can never leave an incident that nobody will be told about.
"""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from doorwatch.i18n import t
from doorwatch.timeutil import from_ts, now_ts
from server.db.base import Transaction

__all__ = ["queue_incident_notifications"]


async def queue_incident_notifications(
    tx: Transaction,
    *,
    incident_id: int,
    kind: str,
    household_id: int,
    device_id: str,
    at: str,
    dashboard_url: str,
    timezone: str,
) -> int:
    """Queue one notification per Apprise URL of the household's worker; return how many."""
    row = await tx.fetch_one(
        "SELECT h.name AS household, h.address, w.id AS worker_id, w.language, w.apprise_urls "
        "FROM households h LEFT JOIN workers w ON w.id = h.worker_id WHERE h.id = ?",
        (household_id,),
    )
    if row is None or row["worker_id"] is None:
        return 0
    language = row["language"]
    local = from_ts(at).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
    kind_text = t(f"incident.kind.{kind}", language)
    values = {
        "kind": kind_text,
        "household": row["household"],
        "address": row["address"],
        "time": local,
        "device": device_id,
        "link": f"{dashboard_url.rstrip('/')}/incidents/{incident_id}",
    }
    title = t("notify.title", language, **values)
    body = t("notify.body", language, **values)
    urls: list[str] = json.loads(row["apprise_urls"] or "[]")
    created = now_ts()
    await tx.executemany(
        "INSERT INTO notifications (incident_id, worker_id, url, title, body, state, attempts, "
        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
        [(incident_id, row["worker_id"], url, title, body, created, created) for url in urls],
    )
    return len(urls)

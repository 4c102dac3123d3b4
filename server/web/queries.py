"""Read-only queries behind the pages and the API, always limited to the user's scope."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from ground.timeutil import from_ts, to_ts, utcnow
from server.db.base import Database, Row
from server.db.event_key import event_key_of_text
from server.domain.incident_opening import IncidentKind, IncidentState
from server.notify.privacy import private_url
from server.web.scope import household_scope, incident_scope
from server.web.users import User

__all__ = [
    "IncidentFilter",
    "audit_entries",
    "device_rows",
    "grid_rows",
    "household_rows",
    "incident_detail",
    "incident_rows",
    "incidents_since",
    "latest_incident_id",
    "quarantine_day",
    "snapshot_jpeg",
    "visible_household",
]

# A device whose last heartbeat is older than this is shown as offline even if
# its retained status still says online (the broker may not have noticed yet).
HEARTBEAT_STALE_S = 180.0


class IncidentFilter(BaseModel):
    """Filters of the incident list, from the query string (all optional)."""

    model_config = ConfigDict(extra="ignore")

    state: IncidentState | None = None
    kind: IncidentKind | None = None
    grid: int | None = Field(None, description="Grid id")
    household: int | None = None
    date_from: date | None = Field(None, description="First local day, inclusive")
    date_to: date | None = Field(None, description="Last local day, inclusive")
    sort: Literal["newest", "oldest", "state", "kind"] = "newest"
    limit: int = Field(500, ge=1, le=5000)


_ORDER = {
    "newest": "i.opened_at DESC, i.id DESC",
    "oldest": "i.opened_at ASC, i.id ASC",
    "state": "CASE i.state WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END, "
             "i.opened_at DESC",
    "kind": "i.kind ASC, i.opened_at DESC",
}

_INCIDENT_COLUMNS = (
    "i.id, i.household_id, i.device_id, i.kind, i.severity, i.state, i.opened_at, i.updated_at, "
    "i.acknowledged_at, i.acknowledged_by, i.resolved_at, i.resolved_by, i.outcome, i.note, "
    "h.name AS household, h.address, h.worker_id, h.grid_id, w.name AS worker, g.name AS grid, "
    "i.group_id, i.group_key, i.silence_id, rw.name AS responder, bw.name AS backup"
)
_INCIDENT_FROM = (
    "FROM incidents i LEFT JOIN households h ON h.id = i.household_id "
    "LEFT JOIN workers w ON w.id = h.worker_id LEFT JOIN grids g ON g.id = h.grid_id "
    "LEFT JOIN workers rw ON rw.id = i.responder_id LEFT JOIN workers bw ON bw.id = i.backup_id"
)


def _local_day_start(day: date, zone: str) -> str:
    return to_ts(datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)))


# A grouped offline incident (server/domain/storms.py) is filed under its first member's
# household, but is every member's: its members are the device-offline incidents pointing
# at it, and a household or grid filter finds it through any of them.
_GROUPS_OF_HOUSEHOLD = ("i.id IN (SELECT gm.group_id FROM incidents gm WHERE gm.household_id = ? "
                        "AND gm.group_id IS NOT NULL)")
_GROUPS_OF_GRID = ("i.id IN (SELECT gm.group_id FROM incidents gm JOIN households gh "
                   "ON gh.id = gm.household_id WHERE gh.grid_id = ? AND gm.group_id IS NOT NULL)")


async def _with_group_members(db: Database, user: User, rows: list[Row]) -> list[Row]:
    """Give each grouped offline incident its place (building, or grid name), how many
    member households it has, and those of them the user may see (``group_households``:
    ids, ``group_members``: id and name); other incidents get empty ones."""
    groups = [int(r["id"]) for r in rows if r["kind"] == IncidentKind.OFFLINE_GROUP.value]
    members: dict[int, list[Row]] = {}
    counts: dict[int, int] = {}
    if groups:
        scope, params = household_scope(user, "gh")
        marks = ",".join("?" for _ in groups)
        found = await db.fetch_all(
            "SELECT DISTINCT gm.group_id, gh.id, gh.name, "  # noqa: S608 - marks and scope are ours
            f"CASE WHEN {scope} THEN 1 ELSE 0 END AS visible FROM incidents gm "
            f"JOIN households gh ON gh.id = gm.household_id WHERE gm.group_id IN ({marks}) "
            "ORDER BY gm.group_id, gh.id", [*params, *groups])
        for member in found:
            group_id = int(member["group_id"])
            counts[group_id] = counts.get(group_id, 0) + 1
            if member["visible"]:
                members.setdefault(group_id, []).append(
                    {"id": int(member["id"]), "name": member["name"]})
    for row in rows:
        row["group_members"] = members.get(int(row["id"]), [])
        row["group_households"] = [int(m["id"]) for m in row["group_members"]]
        row["group_count"] = counts.get(int(row["id"]), 0)
        by, _, name = str(row.get("group_key") or "").partition(":")
        row["group_place"] = (name if by == "building" else row["grid"] or name) if by else None
    return rows


async def incident_rows(db: Database, user: User, flt: IncidentFilter, zone: str) -> list[Row]:
    """Incidents the user may see, filtered and sorted."""
    scope, params = incident_scope(user)
    where = [scope]
    if flt.state:
        where.append("i.state = ?")
        params.append(flt.state.value)
    if flt.kind:
        where.append("i.kind = ?")
        params.append(flt.kind.value)
    if flt.grid is not None:
        where.append(f"(h.grid_id = ? OR {_GROUPS_OF_GRID})")
        params += [flt.grid, flt.grid]
    if flt.household is not None:
        where.append(f"(i.household_id = ? OR {_GROUPS_OF_HOUSEHOLD})")
        params += [flt.household, flt.household]
    if flt.date_from:
        where.append("i.opened_at >= ?")
        params.append(_local_day_start(flt.date_from, zone))
    if flt.date_to:
        where.append("i.opened_at < ?")
        params.append(_local_day_start(flt.date_to + timedelta(days=1), zone))
    sql = (f"SELECT {_INCIDENT_COLUMNS} {_INCIDENT_FROM} WHERE {' AND '.join(where)} "
           f"ORDER BY {_ORDER[flt.sort]} LIMIT {flt.limit}")
    return await _with_group_members(db, user, await db.fetch_all(sql, params))


async def incidents_since(
    db: Database, user: User, after_id: int, limit: int = 100
) -> list[Row]:
    """Incidents newer than ``after_id`` that the user may see (for the live feed)."""
    scope, params = incident_scope(user)
    return await _with_group_members(db, user, await db.fetch_all(
        f"SELECT {_INCIDENT_COLUMNS} {_INCIDENT_FROM} WHERE i.id > ? AND {scope} "
        f"ORDER BY i.id LIMIT {int(limit)}", [after_id, *params],
    ))


async def latest_incident_id(db: Database) -> int:
    """The highest incident id so far (0 when none)."""
    row = await db.fetch_one("SELECT MAX(id) AS top FROM incidents")
    return int(row["top"]) if row and row["top"] is not None else 0


async def incident_detail(db: Database, user: User, incident_id: int) -> dict[str, Any] | None:
    """One incident with its events, snapshots, notifications and history, or None if hidden."""
    scope, params = incident_scope(user)
    incident = await db.fetch_one(
        f"SELECT {_INCIDENT_COLUMNS} {_INCIDENT_FROM} WHERE i.id = ? AND {scope}",
        [incident_id, *params],
    )
    if incident is None:
        return None
    [incident] = await _with_group_members(db, user, [incident])
    events = await db.fetch_all(
        "SELECT e.id, e.device_id, e.seq, e.event_id, e.kind, e.device_time, e.received_at, "
        "e.payload, s.event_id AS snapshot FROM incident_events ie "
        "JOIN events e ON e.id = ie.event_row_id "
        "LEFT JOIN snapshots s ON s.event_id = e.event_id AND s.device_id = e.device_id "
        "WHERE ie.incident_id = ? ORDER BY e.device_time, e.id", (incident_id,),
    )
    for event in events:
        payload = json.loads(event.pop("payload") or "{}")
        event["detail"] = payload.get("detail")
        event["tamper"] = payload.get("tamper")
        event["report"] = payload.get("report")
        event["verdict"] = payload.get("verdict")
    notifications = await db.fetch_all(
        "SELECT n.id, n.url, n.state, n.attempts, n.last_error, n.created_at, n.delivered_at, "
        "w.name AS recipient FROM notifications n LEFT JOIN workers w ON w.id = n.worker_id "
        "WHERE n.incident_id = ? ORDER BY n.id", (incident_id,),
    )
    attempts = await db.fetch_all(
        "SELECT a.notification_id, a.at, a.ok, a.error FROM notification_attempts a "
        "JOIN notifications n ON n.id = a.notification_id WHERE n.incident_id = ? "
        "ORDER BY a.at", (incident_id,),
    )
    for note in notifications:
        note["url"] = private_url(str(note["url"]))
        note["attempt_log"] = [a for a in attempts if a["notification_id"] == note["id"]]
    history = await db.fetch_all(
        "SELECT at, actor, action, detail FROM audit_log WHERE subject = ? ORDER BY at, id",
        (f"incident:{incident_id}",),
    )
    return {"incident": incident, "events": events, "notifications": notifications,
            "history": history}


async def snapshot_jpeg(db: Database, user: User, incident_id: int, event_id: str) -> bytes | None:
    """The JPEG of one of the incident's events, if the user may see the incident."""
    key = event_key_of_text(event_id)
    if key is None or await incident_detail(db, user, incident_id) is None:
        return None
    row = await db.fetch_one(
        "SELECT s.jpeg FROM snapshots s JOIN events e ON e.event_id = s.event_id "
        "AND e.device_id = s.device_id "
        "JOIN incident_events ie ON ie.event_row_id = e.id "
        "WHERE ie.incident_id = ? AND s.event_id = ? AND e.event_key = ?",
        (incident_id, event_id, key),
    )
    return bytes(row["jpeg"]) if row else None


async def visible_household(db: Database, user: User, household_id: int) -> Row | None:
    """The household if the user may see it."""
    scope, params = household_scope(user)
    return await db.fetch_one(
        f"SELECT h.*, w.name AS worker FROM households h LEFT JOIN workers w "  # noqa: S608
        f"ON w.id = h.worker_id WHERE h.id = ? AND {scope}", [household_id, *params],
    )


async def household_rows(db: Database, user: User, zone: str) -> list[Row]:
    """Households the user may see: quarantine day, device health, today's follow-up."""
    scope, params = household_scope(user)
    today = datetime.now(ZoneInfo(zone)).date()
    rows = await db.fetch_all(
        "SELECT h.id, h.name, h.address, h.armed, h.worker_id, h.grid_id, "  # noqa: S608
        "h.quarantine_start, h.quarantine_end, h.ended_early_at, w.name AS worker, "
        "g.name AS grid, "
        # A grouped offline incident is filed under one member household; each member
        # counts its own device-offline incident in it, so none counts the group as well.
        "(SELECT COUNT(*) FROM incidents i WHERE i.household_id = h.id AND i.state != 'resolved'"
        " AND i.kind != 'offline_group') AS open_incidents, "
        "(SELECT COUNT(*) FROM followups f WHERE f.household_id = h.id AND f.day = ?)"
        " AS followups_today "
        "FROM households h LEFT JOIN workers w ON w.id = h.worker_id "
        f"LEFT JOIN grids g ON g.id = h.grid_id WHERE {scope} AND h.purged_at IS NULL "
        "ORDER BY g.name, h.name, h.id", [today.isoformat(), *params],
    )
    devices = await device_rows(db, user)
    by_household: dict[int, list[Row]] = {}
    for device in devices:
        if device["household_id"] is not None:
            by_household.setdefault(int(device["household_id"]), []).append(device)
    for row in rows:
        row["devices"] = by_household.get(int(row["id"]), [])
        row["day_n"], row["day_m"] = quarantine_day(
            row["quarantine_start"], row["quarantine_end"], today, zone)
    return rows


def _local_date(value: str, zone: str) -> date:
    """A stored day (``YYYY-MM-DD``) or time (ISO UTC) as a local date."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return from_ts(value).astimezone(ZoneInfo(zone)).date()


def quarantine_day(
    start: str | None, end: str | None, today: date, zone: str
) -> tuple[int | None, int | None]:
    """(day N, of M days) of a quarantine period; N counts from 1 on the first day."""
    if not start:
        return None, None
    first = _local_date(start, zone)
    total = (_local_date(end, zone) - first).days if end else None
    return (today - first).days + 1, total


async def device_rows(db: Database, user: User) -> list[Row]:
    """Devices with health from their last heartbeat (installers and overseers see all)."""
    if user.role.value in ("admin", "supervisor", "installer"):
        scope, params = "1 = 1", list[object]()
    else:
        scope, params = household_scope(user)
    rows = await db.fetch_all(
        "SELECT d.device_id, d.household_id, d.registered_at, d.max_seq, d.status, "  # noqa: S608
        "d.status_at, d.last_heartbeat_at, d.last_heartbeat, h.name AS household "
        "FROM devices d LEFT JOIN households h ON h.id = d.household_id "
        f"WHERE {scope} ORDER BY d.device_id", params,
    )
    now = utcnow()
    for row in rows:
        beat = json.loads(row.pop("last_heartbeat") or "null") or {}
        row.update(fps=beat.get("camera_fps"), temp=beat.get("cpu_temp_c"),
                   firmware=beat.get("firmware_version"), outbox=beat.get("outbox_depth"),
                   free_disk=beat.get("free_disk_mb"), device_armed=beat.get("armed"))
        fresh = bool(row["last_heartbeat_at"]) and (
            now - from_ts(row["last_heartbeat_at"])).total_seconds() < HEARTBEAT_STALE_S
        row["online"] = row["status"] == "online" and fresh
    return rows


async def grid_rows(db: Database, user: User) -> list[Row]:
    """Grids the user may filter by: all for overseers, their own for a worker."""
    if user.sees_all_households:
        return await db.fetch_all("SELECT id, name FROM grids ORDER BY name, id")
    if user.worker_id is None:
        return []
    return await db.fetch_all(
        "SELECT g.id, g.name FROM grids g JOIN workers w ON w.grid_id = g.id WHERE w.id = ?",
        (user.worker_id,))


async def audit_entries(
    db: Database, *, actor: str | None = None, action: str | None = None, limit: int = 300
) -> list[Row]:
    """The newest audit records, optionally of one actor or action prefix."""
    where, params = ["1 = 1"], []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("action LIKE ?")
        params.append(f"{action}%")
    return await db.fetch_all(
        f"SELECT id, at, actor, action, subject, detail FROM audit_log "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit)}", params,
    )

"""Alert storms: the devices of one building (or grid) that go offline together are one incident.

A power cut in a building takes every device there offline at once; without
grouping, every household's worker (often the same one) gets one alert per
device. Device-offline alerts are therefore held back ``storm.hold_s``
(queued with a later due time in the outbox), and each device-watch tick
looks at the unresolved device-offline incidents opened within
``storm.window_s``:

* by **building** (``households.building``) first, then by **grid** for
  those left over: when ``storm.threshold`` or more are found, one grouped
  incident (kind ``offline_group``) is opened for them, their held alerts are
  withdrawn (``notifications.state = 'grouped'``, never sent) and their own
  deadlines cleared, and the grouped incident is notified once to the duty
  chain of **every member grid** (a building may span grids): each grid's first
  responder by the roster (:func:`server.domain.roster.first_responders` for
  its first member household) gets one alert, a worker responding for two
  grids one; the chains are kept in ``incident_chains``, so the escalation job
  tells every chain's backup and every member grid's supervisor. It is still
  one incident: the first to acknowledge it ends the reminders for everyone,
  and everyone told hears of the acknowledgement and the resolution;
* a device of that building or grid going offline while the grouped incident
  is unresolved (and was last joined within the window) joins it quietly,
  unless its grid was not told yet: then that grid's chain gets the alert.

Members keep their own incident (the device's outage and its return are
still recorded per device) pointing at the group (``incidents.group_id``);
resolving the grouped incident resolves them. Work is claimed per member
with a conditional UPDATE (``AND group_id IS NULL``) in the transaction that
opens or extends the group, so of several server instances one wins; a
loser's transaction is rolled back whole. An alert already sent before the
storm formed (its device went offline more than ``hold_s`` earlier) stays
sent. Households under a silence (:mod:`server.domain.silences`) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ground.logs import get_logger
from ground.timeutil import to_ts
from server.config import EscalationSettings, StormSettings
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.notification_outbox import (
    NotificationContext,
    Purpose,
    notified_workers,
    queue_alert,
    queue_notifications,
)
from server.domain.roster import first_responders

__all__ = ["StormResult", "group_offline"]

log = get_logger(__name__)


@dataclass(slots=True)
class StormResult:
    """What one pass did."""

    opened: list[int] = field(default_factory=list)  # grouped incidents opened
    joined: int = 0  # device-offline incidents that went into a group


class _LostError(Exception):
    """Another instance grouped one of the members first: roll this transaction back."""


async def group_offline(db: Database, storm: StormSettings, context: NotificationContext,
                        escalation: EscalationSettings | None, now: datetime) -> StormResult:
    """Group recent device-offline incidents by building, then grid (see the module doc)."""
    result = StormResult()
    if not storm.enabled:
        return result
    since = to_ts(now - timedelta(seconds=storm.window_s))
    candidates = await db.fetch_all(
        "SELECT i.id, i.household_id, i.device_id, h.grid_id, h.building, g.name AS grid "
        "FROM incidents i JOIN households h ON h.id = i.household_id "
        "LEFT JOIN grids g ON g.id = h.grid_id "
        "WHERE i.kind = ? AND i.state != 'resolved' AND i.group_id IS NULL "
        "AND i.silence_id IS NULL AND i.opened_at >= ? ORDER BY i.id",
        (IncidentKind.DEVICE_OFFLINE.value, since))
    taken: set[int] = set()
    for by in ("building", "grid"):
        groups: dict[str, list[Row]] = {}
        for row in candidates:
            if int(row["id"]) in taken:
                continue
            if by == "building" and row["building"]:
                groups.setdefault(f"building:{row['building']}", []).append(row)
            elif by == "grid" and row["grid_id"] is not None:
                groups.setdefault(f"grid:{row['grid_id']}", []).append(row)
        for key, members in groups.items():
            try:
                async with db.transaction() as tx:
                    grouped = await _group(tx, key, members, storm, context, escalation, now,
                                           since)
            except _LostError:
                continue
            if grouped is None:
                continue
            group_id, created = grouped
            taken.update(int(m["id"]) for m in members)
            result.joined += len(members)
            if created:
                result.opened.append(group_id)
            log.warning("offline devices grouped" if created else "offline devices joined group",
                        extra={"incident_id": group_id, "group": key,
                               "devices": [m["device_id"] for m in members]})
    return result


async def _group(tx: Transaction, key: str, members: list[Row], storm: StormSettings,
                 context: NotificationContext, escalation: EscalationSettings | None,
                 now: datetime, since: str) -> tuple[int, bool] | None:
    """Put ``members`` into the key's open group, or open one if they are enough."""
    at = to_ts(now)
    existing = await tx.fetch_one(
        "SELECT id FROM incidents WHERE kind = ? AND group_key = ? AND state != 'resolved' "
        "AND updated_at >= ? ORDER BY id DESC LIMIT 1",
        (IncidentKind.OFFLINE_GROUP.value, key, since))
    created = existing is None
    if created:
        if len(members) < storm.threshold:
            return None
        group_id = await open_incident(
            tx, household_id=int(members[0]["household_id"]), device_id=None,
            kind=IncidentKind.OFFLINE_GROUP, at=at, escalation=escalation, now=now,
            detail=f"{key}")
    else:
        assert existing is not None
        group_id = int(existing["id"])
    for member in members:
        won = await tx.execute(
            "UPDATE incidents SET group_id = ?, escalate_at = NULL, remind_at = NULL, "
            "backup_at = NULL WHERE id = ? AND group_id IS NULL", (group_id, member["id"]))
        if not won:
            raise _LostError
        # Held alerts not yet sent (nor being sent) are replaced by the group's one.
        await tx.execute(
            "UPDATE notifications SET state = 'grouped' WHERE incident_id = ? "
            "AND state = 'pending' AND attempts = 0 "
            "AND (claimed_until IS NULL OR claimed_until < ?)", (member["id"], at))
        await audit(tx, "system", "incident.grouped", f"incident:{member['id']}",
                    f"incident:{group_id} {key}")
    count = await tx.fetch_one("SELECT COUNT(*) AS n FROM incidents WHERE group_id = ?",
                               (group_id,))
    devices = await tx.fetch_all(
        "SELECT device_id FROM incidents WHERE group_id = ? ORDER BY id", (group_id,))
    detail = (f"{key}: {count['n'] if count else 0} devices offline: "
              + ", ".join(str(d["device_id"]) for d in devices))[:2000]
    await tx.execute("UPDATE incidents SET group_key = ?, detail = ?, updated_at = ? "
                     "WHERE id = ?", (key, detail, at, group_id))
    if created:
        await queue_alert(tx, incident_id=group_id, household_id=int(members[0]["household_id"]),
                          context=context, escalation=escalation, now=now)
        first = await tx.fetch_one("SELECT responder_id, backup_id, silence_id FROM incidents "
                                   "WHERE id = ?", (group_id,))
        assert first is not None
        if first["silence_id"] is not None:
            return group_id, created  # recorded, told nobody (server/domain/silences.py)
        await _chain(tx, group_id, members[0], first["responder_id"], first["backup_id"], at)
    await _tell_member_grids(tx, group_id, members, context, escalation, now)
    if not created:
        await audit(tx, "system", "incident.group_joined", f"incident:{group_id}",
                    ", ".join(str(m["device_id"]) for m in members))
    return group_id, created


async def _chain(tx: Transaction, group_id: int, member: Row, responder: int | None,
                 backup: int | None, at: str) -> None:
    await tx.execute(
        "INSERT INTO incident_chains (incident_id, grid_id, household_id, responder_id, "
        "backup_id, told_at) VALUES (?, ?, ?, ?, ?, ?)",
        (group_id, member["grid_id"], member["household_id"], responder, backup, at))


async def _tell_member_grids(tx: Transaction, group_id: int, members: list[Row],
                             context: NotificationContext,
                             escalation: EscalationSettings | None, now: datetime) -> None:
    """Alert the duty chain of each member grid not told yet (once each: a worker already
    asked about the group is not asked again), and keep it for the escalation job."""
    group = await tx.fetch_one("SELECT silence_id, escalate_at, remind_at FROM incidents "
                               "WHERE id = ?", (group_id,))
    if group is None or group["silence_id"] is not None:
        return
    chains = await tx.fetch_all("SELECT grid_id, household_id FROM incident_chains "
                                "WHERE incident_id = ?", (group_id,))
    grids = {int(c["grid_id"]) for c in chains if c["grid_id"] is not None}
    homes = {int(c["household_id"]) for c in chains}
    at = to_ts(now)
    for member in members:
        grid = None if member["grid_id"] is None else int(member["grid_id"])
        if (grid in grids) if grid is not None else int(member["household_id"]) in homes:
            continue
        who = await first_responders(tx, int(member["household_id"]), now, context.timezone)
        await _chain(tx, group_id, member, who.responder, who.backup, at)
        if grid is not None:
            grids.add(grid)
        homes.add(int(member["household_id"]))
        if who.responder is not None and who.responder not in await notified_workers(
                tx, group_id):
            await queue_notifications(tx, incident_id=group_id, recipients=[who.responder],
                                      purpose=Purpose.ALERT, context=context)
        if who.backup is not None and escalation is not None and (
                group["escalate_at"] is not None or group["remind_at"] is not None):
            # The first grid may have had no backup: this one's is told when it is due.
            await tx.execute(
                "UPDATE incidents SET backup_at = COALESCE(backup_at, ?) WHERE id = ? "
                "AND backup_notified_at IS NULL",
                (to_ts(now + timedelta(seconds=escalation.backup_after_s)), group_id))

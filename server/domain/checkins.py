"""Presence check-ins asked of a household's devices (issue 19 item 2).

A check-in is a row per device: :func:`request_checkin` writes it (a worker
from the dashboard, or the schedule); server/jobs/checkin_watch.py publishes
the ``checkin`` command, reads the device's outcome event, and opens a
``missed_checkin`` incident when the outcome is not ``present`` or no
outcome arrives in time. Presence only: see README "Presence check-in".

Somebody going out during a check-in is one incident, not two: the exit's
breach (the rules, :func:`link_exit`) takes the check-in and says so in its
notifications and page (:func:`during_checkin_text`); a ``left`` outcome opens a
``missed_checkin`` incident of its own only if no breach took the check-in by
its deadline and no allowed exit explained it (the household was not armed,
or the exit was never reported). An exit delivered late, after the check-in
opened its own incident, takes that incident over (:func:`take_missed`): it
becomes the breach, still one incident.

Going out may be allowed: an exit on a permitted leave, or a registered
visitor leaving, opens no breach; it records why on the check-in in progress
(``context`` ``leave`` / ``visit``, :func:`cover_exit`), which then opens no
incident either. When the breach that took a check-in is withdrawn by the
episode's verdict (a handover, or the person came straight back in), the
check-in is withdrawn with it (``context`` = the verdict,
:func:`withdraw_exit`): it no longer counts as missed, and the withdrawal's
notification and the incident's page say so. Nobody answering while the household
has a permitted leave in force is no missed check-in either (``context`` ``leave``,
server/jobs/checkin_watch.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import uuid4
from zoneinfo import ZoneInfo

from ground.i18n import t
from ground.timeutil import from_ts, to_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.errors import InvalidChangeError, NotFoundError

__all__ = ["CheckinTaken", "Covered", "checkin_during", "cover_exit", "during_checkin_text",
           "link_exit", "list_checkins", "request_checkin", "take_missed", "withdraw_exit"]

# Why an exit during a check-in is allowed: a permitted leave, a registered visitor leaving.
Covered = Literal["leave", "visit"]


async def request_checkin(db: Database, household_id: int, *, actor: str, window_s: float,
                          now: datetime) -> list[int]:
    """Ask every device of the household for a check-in at ``now`` (sent once that time has
    come); return the check-ins' ids."""
    async with db.transaction() as tx:
        household = await tx.fetch_one("SELECT id, armed FROM households WHERE id = ? "
                                       "AND purged_at IS NULL", (household_id,))
        if household is None:
            raise NotFoundError("household", household_id)
        devices = await tx.fetch_all(
            "SELECT device_id FROM devices WHERE household_id = ? AND revoked_at IS NULL "
            "ORDER BY device_id", (household_id,))
        if not devices:
            raise InvalidChangeError("household", household_id, "no_device")
        ids = []
        for device in devices:
            rows = await tx.fetch_all(
                "INSERT INTO checkins (household_id, device_id, command_id, requested_by, "
                "requested_at, window_s, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (household_id, device["device_id"], str(uuid4()), actor, to_ts(now), window_s,
                 to_ts(now + timedelta(seconds=window_s))))
            ids.append(int(rows[0]["id"]))
        await audit(tx, actor, "household.checkin", f"household:{household_id}",
                    f"{len(ids)} devices, window {window_s:.0f} s")
    return ids


async def list_checkins(db: Database, household_id: int, limit: int = 30) -> list[Row]:
    """The household's latest check-ins, newest first."""
    return await db.fetch_all(
        "SELECT * FROM checkins WHERE household_id = ? ORDER BY requested_at DESC, id DESC "
        "LIMIT ?", (household_id, limit))


async def _in_progress(tx: Transaction, device_id: str, crossed: str,
                       grace_s: float) -> int | None:
    """The check-in in progress on ``device_id`` when somebody went out at ``crossed``.

    In progress: sent, asked before the crossing, and the crossing before its deadline
    (plus ``grace_s``: the device's window starts when the command reaches it), not yet
    answered ``present`` and not yet given an incident.
    """
    latest = to_ts(from_ts(crossed) - timedelta(seconds=grace_s))
    row = await tx.fetch_one(
        "SELECT id FROM checkins WHERE device_id = ? AND published_at IS NOT NULL "
        "AND requested_at <= ? AND deadline_at >= ? AND incident_id IS NULL "
        "AND (outcome IS NULL OR outcome = 'left') ORDER BY id DESC LIMIT 1",
        (device_id, crossed, latest))
    return None if row is None else int(row["id"])


async def link_exit(tx: Transaction, *, device_id: str, crossed: str, incident_id: int,
                    grace_s: float) -> int | None:
    """Give the check-in in progress on ``device_id`` when somebody went out at ``crossed``
    to that exit's breach ``incident_id`` (the one incident the worker acts on); return the
    check-in's id, or None when none was in progress (see :func:`_in_progress`)."""
    return await _mark_in_progress(tx, device_id, crossed, grace_s, "incident_id", incident_id)


async def take_missed(tx: Transaction, *, device_id: str, crossed: str, grace_s: float,
                      at: str) -> int | None:
    """The check-in on ``device_id`` during which somebody went out at ``crossed`` but that
    was settled as missed before the exit arrived (a device offline delivers its exit
    late): return its own ``missed_checkin`` incident, which the exit's breach now takes
    over (one incident for one person going out), marking the check-in taken late at
    ``at``. None when there is no such check-in, or its incident is already resolved (the
    worker closed it: the breach is news of its own).

    The caller holds the household's row (rules._lock_households, as the check-in watch
    does before it opens that incident), so the two never both decide.
    """
    latest = to_ts(from_ts(crossed) - timedelta(seconds=grace_s))
    row = await tx.fetch_one(
        "SELECT c.id, c.incident_id FROM checkins c JOIN incidents i ON i.id = c.incident_id "
        "WHERE c.device_id = ? AND c.published_at IS NOT NULL AND c.requested_at <= ? "
        "AND c.deadline_at >= ? AND c.context IS NULL "
        "AND c.outcome IN ('absent', 'no_answer', 'left') "
        "AND i.kind = 'missed_checkin' AND i.state != 'resolved' ORDER BY c.id DESC LIMIT 1",
        (device_id, crossed, latest))
    if row is None:
        return None
    await tx.execute("UPDATE checkins SET taken_late_at = ? WHERE id = ?", (at, row["id"]))
    return int(row["incident_id"])


async def cover_exit(tx: Transaction, *, device_id: str, crossed: str, grace_s: float,
                     context: Covered) -> int | None:
    """Record on the check-in in progress on ``device_id`` that the exit at ``crossed`` was
    allowed (``context``), so that its ``left`` outcome opens no incident; return the
    check-in's id, or None when none was in progress."""
    return await _mark_in_progress(tx, device_id, crossed, grace_s, "context", context)


async def _mark_in_progress(tx: Transaction, device_id: str, crossed: str, grace_s: float,
                            column: Literal["incident_id", "context"],
                            value: int | str) -> int | None:
    """Set ``column`` (if still unset) on the check-in in progress when somebody went out
    at ``crossed``; its id, or None when none was in progress."""
    checkin = await _in_progress(tx, device_id, crossed, grace_s)
    if checkin is None:
        return None
    await tx.execute(f"UPDATE checkins SET {column} = ? WHERE id = ? "  # noqa: S608 - a Literal
                     f"AND {column} IS NULL", (value, checkin))
    return checkin


async def withdraw_exit(tx: Transaction, incident_id: int, verdict: str) -> None:
    """The breach ``incident_id`` was withdrawn (``verdict``: nobody left): so is the
    check-in it took, which then no longer counts as missed."""
    # Not one taken late: nobody answered it before the exit was known, which a withdrawn
    # exit does not explain.
    await tx.execute("UPDATE checkins SET context = ? WHERE incident_id = ? AND context IS NULL "
                     "AND taken_late_at IS NULL", (verdict, incident_id))


@dataclass(frozen=True, slots=True)
class CheckinTaken:
    """The check-in a breach took: when it was asked, whether it was withdrawn since
    (``context`` ``handover`` / ``reentry``), and whether the breach took it late (after
    it had opened and notified its own missed-check-in incident: :func:`take_missed`)."""

    asked: str
    context: str | None = None
    late: bool = False

    @property
    def withdrawn(self) -> bool:
        """Whether the breach was withdrawn, and the check-in with it."""
        return self.context in ("handover", "reentry")


async def checkin_during(conn: Database | Transaction, incident_id: int,
                         kind: str) -> CheckinTaken | None:
    """The check-in during which incident ``incident_id`` (of ``kind``, a breach) happened,
    or None when it did not (see :func:`link_exit`)."""
    if kind == "missed_checkin":
        return None  # its own text is about the check-in
    row = await conn.fetch_one("SELECT requested_at, context, taken_late_at FROM checkins "
                               "WHERE incident_id = ? ORDER BY id LIMIT 1", (incident_id,))
    if row is None:
        return None
    return CheckinTaken(str(row["requested_at"]), row["context"],
                        row["taken_late_at"] is not None)


def during_checkin_text(taken: CheckinTaken, language: str | None, timezone: str) -> str:
    """The sentence telling a worker that this incident happened during the check-in
    ``taken`` (and that it is that check-in's incident too, or was, until withdrawn)."""
    local = from_ts(taken.asked).astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M:%S")
    key = ("notify.during_checkin.withdrawn" if taken.withdrawn
           else "notify.during_checkin.late" if taken.late else "notify.during_checkin")
    return t(key, language, time=local)

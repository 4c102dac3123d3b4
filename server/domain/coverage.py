"""Monitoring coverage: how much of a household's armed time its door was really watched.

A "no breach" is only worth the time in which a breach *would* have been
seen. For every armed household the device watch (server/jobs/device_watch.py)
asks on each tick whether each part of the watch is **verified** (the precise
rules are in docs/server-domain.md, "Monitoring coverage"):

* ``device`` — a device is assigned to the household;
* ``link`` — the server heard from it within the heartbeat budget and its
  retained status (Last Will) does not say offline past the grace period;
* ``camera`` — its latest heartbeat reports frames (``camera_fps`` > 0) and no
  ``camera_failed`` alarm, and no camera tamper event of it sits in an incident
  nobody has resolved yet;
* ``door_sensor`` — no ``door_sensor_disconnected`` tamper event of it sits in
  an unresolved incident.

Whatever is not verified is a *blind spell* (a row of ``coverage_spells`` with
the part, since when and why); so is the armed time itself (``part =
'armed'``). :func:`record_coverage` opens and closes those rows (an open spell
is unique per household and part, so several instances record it once);
:func:`household_coverage` and :func:`grid_coverage` turn them into the share
of a day's armed time in which every part was verified.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.config import DeviceWatchSettings
from server.db.base import Database, Row

__all__ = [
    "BlindSpell",
    "Coverage",
    "GridCoverage",
    "Part",
    "day_window",
    "grid_coverage",
    "household_coverage",
    "record_coverage",
]

log = get_logger(__name__)

ARMED = "armed"


class Part(StrEnum):
    """A part of a household's watch that can be blind (keys of ``coverage.part.*``)."""

    DEVICE = "device"
    LINK = "link"
    CAMERA = "camera"
    DOOR_SENSOR = "door_sensor"


_CAMERA_TAMPER = {"camera_covered", "camera_blinded", "camera_moved", "camera_frozen",
                  "camera_failed"}
_DOOR_TAMPER = {"door_sensor_disconnected"}


@dataclass(frozen=True, slots=True)
class _Blind:
    since: str
    device_id: str | None
    reason: str


def _silent_since(row: Row, now: datetime, cfg: DeviceWatchSettings) -> str | None:
    """When the device's link went blind, or None (the device watch's own rule)."""
    if row["status"] == "offline" and row["status_at"] is not None:
        if from_ts(row["status_at"]) <= now - timedelta(seconds=cfg.offline_grace_s):
            return str(row["status_at"])
        return None
    alive = row["last_heartbeat_at"] or row["status_at"]
    if alive is None:
        return str(row["assigned_at"] or to_ts(now))
    if from_ts(alive) <= now - timedelta(seconds=cfg.heartbeat_budget_s):
        return str(alive)
    return None


def _camera_from_heartbeat(row: Row) -> str | None:
    """Why the latest heartbeat does not vouch for the camera, or None if it does."""
    if row["last_heartbeat"] is None:
        return "no heartbeat yet"
    try:
        beat = json.loads(str(row["last_heartbeat"]))
    except ValueError:
        return "unreadable heartbeat"
    failed = [a for a in beat.get("alarms") or [] if str(a).startswith("camera_failed")]
    if failed:
        return str(failed[0])[:200]
    fps = beat.get("camera_fps")
    if not isinstance(fps, int | float) or fps <= 0:
        return "heartbeat reports no camera frames"
    return None


async def _open_tampers(db: Database) -> dict[str, list[tuple[str, str]]]:
    """Per device: (tamper kind, received_at) of tamper events in unresolved incidents."""
    rows = await db.fetch_all(
        "SELECT e.device_id, e.payload, e.received_at FROM incidents i "
        "JOIN incident_events ie ON ie.incident_id = i.id "
        "JOIN events e ON e.id = ie.event_row_id "
        "WHERE i.state != 'resolved' AND e.kind = 'tamper'")
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        try:
            kind = str(json.loads(str(row["payload"])).get("tamper") or "")
        except ValueError:
            continue
        found.setdefault(str(row["device_id"]), []).append((kind, str(row["received_at"])))
    return found


def _blind_parts(devices: list[Row], tampers: dict[str, list[tuple[str, str]]], now: datetime,
                 cfg: DeviceWatchSettings) -> dict[str, _Blind]:
    """The parts of one armed household's watch that are not verified now."""
    if not devices:
        return {Part.DEVICE: _Blind(to_ts(now), None, "no device assigned")}
    blind: dict[str, _Blind] = {}
    # With several doors' devices, a part is blind when it is blind on any of them.
    for row in devices:
        device_id = str(row["device_id"])
        silent = _silent_since(row, now, cfg)
        if silent is not None and Part.LINK not in blind:
            why = "Last Will: offline" if row["status"] == "offline" else "no heartbeat"
            blind[Part.LINK] = _Blind(silent, device_id, why)
        for kind, at in sorted(tampers.get(device_id, []), key=lambda t: t[1]):
            if kind in _CAMERA_TAMPER and Part.CAMERA not in blind:
                blind[Part.CAMERA] = _Blind(at, device_id, kind)
            elif kind in _DOOR_TAMPER and Part.DOOR_SENSOR not in blind:
                blind[Part.DOOR_SENSOR] = _Blind(at, device_id, kind)
        camera = _camera_from_heartbeat(row)
        if camera is not None and Part.CAMERA not in blind:
            since = row["last_heartbeat_at"] or row["assigned_at"] or to_ts(now)
            blind[Part.CAMERA] = _Blind(str(since), device_id, camera)
    return blind


async def record_coverage(db: Database, cfg: DeviceWatchSettings, now: datetime) -> int:
    """Open and close armed and blind spells to match what is true now; return changes.

    Called on every device-watch tick, so a spell's edges are as precise as
    the tick interval, except where the records say better (a link is blind
    from the last sign of life, a tamper from the event's receipt).
    """
    stamp = to_ts(now)
    households = await db.fetch_all(
        "SELECT id, armed FROM households WHERE purged_at IS NULL")
    devices = await db.fetch_all(
        "SELECT d.device_id, d.household_id, d.status, d.status_at, d.last_heartbeat_at, "
        "d.last_heartbeat, (SELECT MAX(a.assigned_at) FROM device_assignments a "
        " WHERE a.device_id = d.device_id) AS assigned_at "
        "FROM devices d WHERE d.household_id IS NOT NULL AND d.revoked_at IS NULL "
        "ORDER BY d.device_id")
    by_household: dict[int, list[Row]] = {}
    for row in devices:
        by_household.setdefault(int(row["household_id"]), []).append(row)
    open_rows = await db.fetch_all(
        "SELECT id, household_id, part, started_at FROM coverage_spells WHERE ended_at IS NULL")
    open_spells = {(int(r["household_id"]), str(r["part"])): r for r in open_rows}
    tampers = await _open_tampers(db)
    changes = 0
    for household in households:
        household_id = int(household["id"])
        wanted: dict[str, _Blind] = {}
        if household["armed"]:
            wanted = _blind_parts(by_household.get(household_id, []), tampers, now, cfg)
            wanted[ARMED] = _Blind(stamp, None, "armed")
        for part in [p for (h, p) in open_spells if h == household_id]:
            if part not in wanted:
                changes += await _close(db, open_spells[(household_id, part)], stamp)
        for part, blind in wanted.items():
            if (household_id, part) in open_spells:
                continue
            # A blind spell never starts before the armed time it is part of is recorded
            # (the share is computed within armed time anyway; this keeps lists honest).
            changes += await _open(db, household_id, part, blind, stamp)
    return changes


async def _open(db: Database, household_id: int, part: str, blind: _Blind, stamp: str) -> int:
    since = min(blind.since, stamp)
    async with db.transaction() as tx:
        created = await tx.fetch_all(
            "INSERT INTO coverage_spells (household_id, part, device_id, started_at, reason) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (household_id, part, blind.device_id, since, blind.reason[:500]))
    if created and part != ARMED:
        log.info("blind spell", extra={"device_id": blind.device_id, "household_id": household_id,
                                       "part": part, "since": since, "reason": blind.reason})
    return len(created)


async def _close(db: Database, spell: Row, stamp: str) -> int:
    async with db.transaction() as tx:
        return await tx.execute(
            "UPDATE coverage_spells SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
            (max(stamp, str(spell["started_at"])), spell["id"]))


# -- reading coverage -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlindSpell:
    """One blind spell within a day's armed time."""

    household_id: int
    part: str
    device_id: str | None
    start: datetime
    end: datetime
    ongoing: bool
    reason: str | None

    @property
    def seconds(self) -> float:
        """How long it lasted within the window."""
        return (self.end - self.start).total_seconds()


@dataclass(slots=True)
class Coverage:
    """One household's coverage in a window (a day)."""

    household_id: int
    armed_s: float = 0.0
    blind_s: float = 0.0
    spells: list[BlindSpell] = field(default_factory=list)

    @property
    def verified_s(self) -> float:
        """Armed seconds in which every part was verified."""
        return max(0.0, self.armed_s - self.blind_s)

    @property
    def share(self) -> float | None:
        """Verified share of the armed time (None when it was not armed at all)."""
        return None if self.armed_s <= 0 else self.verified_s / self.armed_s


@dataclass(slots=True)
class GridCoverage:
    """A grid's households and their sum (the share is weighted by armed time)."""

    households: list[Coverage]

    @property
    def armed_s(self) -> float:
        """Sum of armed seconds."""
        return sum(c.armed_s for c in self.households)

    @property
    def blind_s(self) -> float:
        """Sum of blind armed seconds."""
        return sum(c.blind_s for c in self.households)

    @property
    def share(self) -> float | None:
        """Verified share of all armed time of the grid."""
        armed = self.armed_s
        return None if armed <= 0 else max(0.0, armed - self.blind_s) / armed


def day_window(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC bounds of a local calendar day."""
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))
    return start, start + timedelta(days=1)


Interval = tuple[datetime, datetime]


def _union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for s1, e1 in a:
        for s2, e2 in b:
            start, end = max(s1, s2), min(e1, e2)
            if start < end:
                out.append((start, end))
    return out


def _length(intervals: list[Interval]) -> float:
    return sum((e - s).total_seconds() for s, e in intervals)


async def household_coverage(
    db: Database, household_ids: list[int], start: datetime, end: datetime, now: datetime
) -> dict[int, Coverage]:
    """Coverage of each household in ``[start, end)`` (open spells count up to ``now``)."""
    result = {h: Coverage(h) for h in household_ids}
    if not household_ids:
        return result
    end = min(end, now)
    if end <= start:
        return result
    marks = ", ".join("?" for _ in household_ids)
    rows = await db.fetch_all(
        "SELECT household_id, part, device_id, started_at, ended_at, reason "  # noqa: S608
        f"FROM coverage_spells WHERE household_id IN ({marks}) AND started_at < ? "
        "AND (ended_at IS NULL OR ended_at > ?) ORDER BY started_at, id",
        [*household_ids, to_ts(end), to_ts(start)])
    armed: dict[int, list[Interval]] = {}
    blind: dict[int, list[Row]] = {}
    for row in rows:
        household_id = int(row["household_id"])
        if row["part"] == ARMED:
            s = max(from_ts(row["started_at"]), start)
            e = min(from_ts(row["ended_at"]) if row["ended_at"] else end, end)
            if s < e:
                armed.setdefault(household_id, []).append((s, e))
        else:
            blind.setdefault(household_id, []).append(row)
    for household_id, coverage in result.items():
        armed_time = _union(armed.get(household_id, []))
        coverage.armed_s = _length(armed_time)
        pieces: list[Interval] = []
        for row in blind.get(household_id, []):
            raw_end = from_ts(row["ended_at"]) if row["ended_at"] else now
            for s, e in _intersect([(from_ts(row["started_at"]), min(raw_end, end))], armed_time):
                pieces.append((s, e))
                coverage.spells.append(BlindSpell(
                    household_id=household_id, part=str(row["part"]), device_id=row["device_id"],
                    start=s, end=e, ongoing=row["ended_at"] is None and e >= end,
                    reason=row["reason"]))
        coverage.blind_s = _length(_union(pieces))
        coverage.spells.sort(key=lambda spell: (spell.start, spell.part))
    return result


async def grid_coverage(
    db: Database, household_ids: list[int], start: datetime, end: datetime, now: datetime
) -> GridCoverage:
    """Coverage of several households (a grid) in ``[start, end)``."""
    found = await household_coverage(db, household_ids, start, end, now)
    return GridCoverage([found[h] for h in household_ids])

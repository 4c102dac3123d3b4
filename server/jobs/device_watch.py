"""Device health from the server's side: offline devices and data loss.

Every tick (task name ``device-watch``):

* a device of an armed household is *offline* when its retained status (the
  agent's Last Will) has said ``offline`` for longer than the grace period, or
  when its last sign of life (heartbeat, else status, else its assignment) is
  older than the heartbeat budget. One device-offline incident is opened per
  outage: ``devices.offline_incident_id`` is claimed with a conditional UPDATE,
  so several instances open it once. When the device is heard from again the
  claim is released (the incident stays for a person to resolve);
* many devices of one building or grid offline within a window become one
  grouped incident with one notification (:mod:`server.domain.storms`);
* a seq gap still open after its grace period is reported once as a
  ``data_loss`` warning (``seq_gaps.warned_at`` claimed the same way);
* armed time and blind spells (a part of a household's watch not verified)
  are recorded for monitoring coverage (:mod:`server.domain.coverage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.coverage import record_coverage
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.notification_outbox import NotificationContext, queue_alert
from server.domain.storms import group_offline
from server.jobs.periodic import run_periodically

__all__ = ["DeviceWatch", "WatchResult"]

log = get_logger(__name__)

# Placeholder claim while the incident row is being written in the same transaction.
_CLAIMING = -1


@dataclass(slots=True)
class WatchResult:
    """What one tick did."""

    offline: int = 0
    back_online: int = 0
    data_loss: int = 0
    groups_opened: int = 0  # grouped offline incidents (storms) opened
    grouped: int = 0  # device-offline incidents put into a group
    coverage_changes: int = 0  # armed/blind spells opened or closed


class DeviceWatch:
    """The device-watch loop."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()
        self._context = NotificationContext.of(settings)

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and retried next time."""
        await run_periodically("device-watch", self.tick, self._settings.devices.poll_interval_s)

    async def tick(self) -> WatchResult:
        """Check every assigned device and every open seq gap once."""
        now = self._clock.now()
        result = WatchResult()
        rows = await self._db.fetch_all(
            "SELECT d.device_id, d.household_id, d.status, d.status_at, d.last_heartbeat_at, "
            "d.offline_incident_id, h.armed, h.worker_id, "
            "(SELECT MAX(a.assigned_at) FROM device_assignments a "
            " WHERE a.device_id = d.device_id) AS assigned_at "
            "FROM devices d JOIN households h ON h.id = d.household_id")
        for row in rows:
            silent = self._silent_since(row, now)
            if row["offline_incident_id"] is None and silent is not None and row["armed"]:
                result.offline += await self._open_offline(row, silent, now)
            elif row["offline_incident_id"] is not None and silent is None:
                result.back_online += await self._back_online(row)
        grouped = await group_offline(self._db, self._settings.storm, self._context,
                                      self._settings.escalation, now)
        result.groups_opened, result.grouped = len(grouped.opened), grouped.joined
        result.data_loss = await self._warn_gaps(now)
        result.coverage_changes = await record_coverage(self._db, self._settings.devices, now)
        return result

    def _silent_since(self, row: Row, now: datetime) -> str | None:
        """Since when the device counts as offline, or None if it does not."""
        cfg = self._settings.devices
        if row["status"] == "offline" and row["status_at"] is not None:
            if from_ts(row["status_at"]) <= now - timedelta(seconds=cfg.offline_grace_s):
                return str(row["status_at"])
            return None  # within the grace: a reconnecting device says online soon
        alive = row["last_heartbeat_at"] or row["status_at"] or row["assigned_at"]
        if alive is None:
            return None
        if from_ts(alive) <= now - timedelta(seconds=cfg.heartbeat_budget_s):
            return str(alive)
        return None

    async def _open_offline(self, row: Row, since: str, now: datetime) -> int:
        device_id = row["device_id"]
        async with self._db.transaction() as tx:
            won = await tx.execute(
                "UPDATE devices SET offline_incident_id = ? WHERE device_id = ? "
                "AND offline_incident_id IS NULL", (_CLAIMING, device_id))
            if not won:
                return 0
            incident_id = await open_incident(
                tx, household_id=int(row["household_id"]), device_id=device_id,
                kind=IncidentKind.DEVICE_OFFLINE, at=to_ts(now),
                escalation=self._settings.escalation, now=now,
                detail=f"silent since {since}" + (" (Last Will)" if row["status"] == "offline"
                                                  else " (no heartbeat)"))
            await tx.execute("UPDATE devices SET offline_incident_id = ? WHERE device_id = ?",
                             (incident_id, device_id))
            # Held back a little: if it is one of many (a power cut), the storm's one
            # notification replaces it (server/domain/storms.py).
            storm = self._settings.storm
            await queue_alert(tx, incident_id=incident_id,
                              household_id=int(row["household_id"]), context=self._context,
                              escalation=self._settings.escalation, now=now,
                              delay_s=storm.hold_s if storm.enabled else 0.0)
        log.warning("device offline", extra={"device_id": device_id, "since": since,
                                             "incident_id": incident_id})
        return 1

    async def _back_online(self, row: Row) -> int:
        async with self._db.transaction() as tx:
            won = await tx.execute(
                "UPDATE devices SET offline_incident_id = NULL WHERE device_id = ? "
                "AND offline_incident_id = ?", (row["device_id"], row["offline_incident_id"]))
            if won:
                await audit(tx, "system", "device.back_online", f"device:{row['device_id']}",
                            f"incident:{row['offline_incident_id']}")
        if won:
            log.info("device back online", extra={"device_id": row["device_id"]})
        return int(bool(won))

    async def _warn_gaps(self, now: datetime) -> int:
        cutoff = to_ts(now - timedelta(seconds=self._settings.devices.gap_grace_s))
        gaps = await self._db.fetch_all(
            "SELECT g.id, g.device_id, g.first_seq, g.last_seq, g.detected_at, d.household_id "
            "FROM seq_gaps g LEFT JOIN devices d ON d.device_id = g.device_id "
            "WHERE g.warned_at IS NULL AND g.detected_at <= ?", (cutoff,))
        warned = 0
        for gap in gaps:
            count = int(gap["last_seq"]) - int(gap["first_seq"]) + 1
            detail = (f"seq {gap['first_seq']}..{gap['last_seq']} ({count} records) never "
                      f"arrived; gap seen at {gap['detected_at']}")
            async with self._db.transaction() as tx:
                won = await tx.execute(
                    "UPDATE seq_gaps SET warned_at = ? WHERE id = ? AND warned_at IS NULL",
                    (to_ts(now), gap["id"]))
                if not won:
                    continue
                await tx.execute(
                    "INSERT INTO warnings (at, kind, device_id, household_id, detail) "
                    "VALUES (?, 'data_loss', ?, ?, ?)",
                    (to_ts(now), gap["device_id"], gap["household_id"], detail))
            warned += 1
            log.warning("possible data loss", extra={"device_id": gap["device_id"],
                                                     "first_seq": gap["first_seq"],
                                                     "last_seq": gap["last_seq"]})
        return warned

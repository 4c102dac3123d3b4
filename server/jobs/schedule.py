"""The quarantine schedule: arm at a period's start, disarm at its end; overdue returns.

Every tick (task name ``schedule``):

1. households whose period has begun are armed, those whose period is over
   disarmed. Each change is a conditional UPDATE (``WHERE armed = 0``), so of
   several instances exactly one does it and audits it; it also queues the
   retained command for each of the household's devices (``arm_command``,
   ``arm_published_at = NULL``) in the same transaction;
2. queued commands are published, retained, through the server's MQTT link,
   then marked published. A crash between publish and mark only publishes the
   same retained state again, which the device ignores (same command id);
3. permitted leaves still *out* after their window -> overdue-return incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import NAMESPACE_URL, uuid5

from broker.messages import ArmCommand, DisarmCommand, encode
from broker.topics import command_topic
from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Row
from server.domain.audit import audit
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.leaves import LeaveState
from server.domain.notification_outbox import NotificationContext, queue_alert
from server.domain.releases import ReleaseContext, ReleaseOutcome, record_release
from server.jobs.periodic import run_periodically

__all__ = ["CommandPublisher", "ScheduleResult", "Scheduler"]

log = get_logger(__name__)

_OPPOSITE = {"arm": "disarm", "disarm": "arm"}


class CommandPublisher(Protocol):
    """What the scheduler needs of the MQTT link (``server.mqtt.link.MqttLink`` fits)."""

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish one message."""
        ...


@dataclass(slots=True)
class ScheduleResult:
    """What one tick did."""

    armed: int = 0
    disarmed: int = 0
    published: int = 0
    overdue: int = 0


class Scheduler:
    """The schedule loop."""

    def __init__(
        self, db: Database, settings: ServerSettings, publisher: CommandPublisher | None,
        clock: Clock | None = None, *, is_connected: object = None,
    ):
        self._db = db
        self._settings = settings
        self._publisher = publisher
        self._clock = clock or SystemClock()
        # A callable telling whether the link is up; publishing waits for it.
        self._is_connected = is_connected if callable(is_connected) else (lambda: True)
        self._context = NotificationContext.of(settings)

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and retried next time."""
        await run_periodically("schedule", self.tick, self._settings.schedule.poll_interval_s)

    async def tick(self) -> ScheduleResult:
        """Apply the periods, publish queued commands, open overdue-return incidents."""
        now = to_ts(self._clock.now())
        result = ScheduleResult()
        result.armed, result.disarmed = await self._apply_periods(now)
        result.overdue = await self._overdue_leaves(now)
        if self._publisher is not None and self._is_connected():
            result.published = await self.publish_pending()
        return result

    async def _apply_periods(self, now: str) -> tuple[int, int]:
        starting = await self._db.fetch_all(
            "SELECT id FROM households WHERE purged_at IS NULL AND armed = 0 "
            "AND quarantine_start <= ? AND quarantine_end > ?", (now, now))
        ending = await self._db.fetch_all(
            "SELECT id FROM households WHERE armed = 1 AND quarantine_end <= ?", (now,))
        armed = sum([await self._switch(int(r["id"]), True, now) for r in starting])
        disarmed = sum([await self._switch(int(r["id"]), False, now) for r in ending])
        return armed, disarmed

    async def _switch(self, household_id: int, armed: bool, now: str) -> int:
        command = "arm" if armed else "disarm"
        async with self._db.transaction() as tx:
            won = await tx.execute(
                "UPDATE households SET armed = ?, updated_at = ? WHERE id = ? AND armed = ?",
                (int(armed), now, household_id, int(not armed)))
            if not won:
                return 0
            devices = await tx.execute(
                "UPDATE devices SET arm_command = ?, arm_command_at = ?, arm_published_at = NULL "
                "WHERE household_id = ?", (command, now, household_id))
            await audit(tx, "schedule", f"household.{command}", f"household:{household_id}",
                        f"quarantine period; {devices} devices")
            if not armed:
                # The period ran out: the household is released (a household ended early
                # by hand was disarmed then, and released then).
                period = await tx.fetch_one(
                    "SELECT quarantine_end FROM households WHERE id = ?", (household_id,))
                end = period["quarantine_end"] if period else None
                await record_release(tx, household_id, actor="schedule",
                                     outcome=ReleaseOutcome.COMPLETED, note=None,
                                     at=end or now, planned_end=end,
                                     context=ReleaseContext.of(self._settings))
        log.info("household armed" if armed else "household disarmed",
                 extra={"household_id": household_id, "devices": devices})
        return 1

    async def publish_pending(self) -> int:
        """Publish every queued arm/disarm command (retained); return how many."""
        assert self._publisher is not None
        pending = await self._db.fetch_all(
            "SELECT device_id, arm_command, arm_command_at FROM devices "
            "WHERE arm_command IS NOT NULL AND arm_published_at IS NULL ORDER BY device_id")
        for row in pending:
            self._publish(row)
            async with self._db.transaction() as tx:
                await tx.execute(
                    "UPDATE devices SET arm_published_at = ? WHERE device_id = ? "
                    "AND arm_command = ? AND arm_command_at = ?",
                    (to_ts(self._clock.now()), row["device_id"], row["arm_command"],
                     row["arm_command_at"]))
        return len(pending)

    def _publish(self, row: Row) -> None:
        assert self._publisher is not None
        device_id, name = row["device_id"], row["arm_command"]
        issued = from_ts(row["arm_command_at"])
        # The same queued command always gets the same id, so publishing it again
        # (after a crash before marking it sent) is recognised by the device.
        command_id = uuid5(NAMESPACE_URL, f"doorwatch:{device_id}:{name}:{row['arm_command_at']}")
        model = (ArmCommand(device_id=device_id, issued_at=issued, command_id=command_id)
                 if name == "arm"
                 else DisarmCommand(device_id=device_id, issued_at=issued, command_id=command_id))
        # Arm and disarm live on their own topics; the opposite's retained copy is
        # cleared first (empty retained payload) so a rebooting device never gets both.
        self._publisher.publish(command_topic(device_id, _OPPOSITE[name]), b"", qos=1, retain=True)
        self._publisher.publish(command_topic(device_id, name), encode(model), qos=1, retain=True)
        log.info("arm state published", extra={"device_id": device_id, "command": name})

    async def _overdue_leaves(self, now: str) -> int:
        due = await self._db.fetch_all(
            "SELECT l.id, l.household_id, l.ends_at, l.reason, h.armed, h.worker_id "
            "FROM leaves l JOIN households h ON h.id = l.household_id "
            "WHERE l.state = ? AND l.ends_at <= ?", (LeaveState.OUT.value, now))
        opened = 0
        for row in due:
            async with self._db.transaction() as tx:
                won = await tx.execute("UPDATE leaves SET state = ? WHERE id = ? AND state = ?",
                                       (LeaveState.OVERDUE.value, row["id"], LeaveState.OUT.value))
                if not won or not row["armed"]:
                    continue
                incident_id = await open_incident(
                    tx, household_id=int(row["household_id"]), device_id=None,
                    kind=IncidentKind.OVERDUE_RETURN, at=row["ends_at"],
                    escalation=self._settings.escalation, now=self._clock.now(),
                    detail=f"leave:{row['id']} {row['reason']}"[:500], leave_id=int(row["id"]))
                await tx.execute("UPDATE leaves SET incident_id = ? WHERE id = ?",
                                 (incident_id, row["id"]))
                await queue_alert(tx, incident_id=incident_id,
                                  household_id=int(row["household_id"]), context=self._context,
                                  escalation=self._settings.escalation, now=self._clock.now())
                opened += 1
                log.warning("overdue return from a permitted leave",
                            extra={"household_id": row["household_id"], "leave_id": row["id"],
                                   "incident_id": incident_id})
        return opened

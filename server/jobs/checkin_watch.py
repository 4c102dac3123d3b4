"""Presence check-ins on the server (task name ``checkin-watch``).

Every tick:

* at each of ``[checkins] times`` (local), a check-in is asked of every armed
  household with a device (claimed once across instances in ``scheduled_jobs``);
* each check-in due (``requested_at`` reached) and not yet sent is published
  as a ``checkin`` command (not
  retained: a device that is offline misses it, which then counts as
  unanswered); ``published_at`` is claimed with a conditional UPDATE;
* each check-in whose device has reported its outcome (event kind
  ``checkin`` with the command's id) gets it; ``absent``, or no outcome by
  ``deadline + answer_grace_s``, opens one ``missed_checkin`` incident for the
  household's worker;
* ``left`` is somebody going out: in an armed household their exit is a
  breach, which takes the check-in (:func:`server.domain.checkins.link_exit`)
  so the worker gets one incident, not two. The outcome is recorded at once;
  only if no breach has taken the check-in by ``deadline + answer_grace_s``
  (or the household is not armed, so no breach comes) does it open a
  ``missed_checkin`` incident of its own; an exit that was allowed (a
  permitted leave, a registered visitor leaving: ``checkins.context``) opens
  none;
* a check-in nobody answered (``absent``, ``no_answer``), or a ``left`` one no
  breach took, while the household had a permitted leave in force (its window
  overlaps the check-in's, not cancelled) opens no incident either: a leave
  is the household's, so nobody need be home; the check-in gets ``context``
  ``leave`` and is listed with that reason (docs/server-domain.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from broker.messages import CheckinCommand, encode
from broker.topics import command_topic
from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database, Row, Transaction
from server.domain.checkins import request_checkin
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.leaves import leave_overlapping
from server.domain.notification_outbox import NotificationContext, queue_alert
from server.jobs.followup_reminder import next_reminder
from server.jobs.periodic import claim_due_run, run_periodically
from server.jobs.schedule import CommandPublisher

__all__ = ["CheckinJob", "CheckinResult"]

log = get_logger(__name__)


@dataclass(slots=True)
class CheckinResult:
    """What one tick did."""

    scheduled: int = 0
    published: int = 0
    present: int = 0
    missed: int = 0


class CheckinJob:
    """Publishes check-ins, records their outcomes, opens incidents for missed ones."""

    def __init__(self, db: Database, settings: ServerSettings, publisher: CommandPublisher,
                 clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._publisher = publisher
        self._clock = clock or SystemClock()
        self._context = NotificationContext.of(settings)

    async def run(self) -> None:
        """Tick until cancelled."""
        await run_periodically("checkin-watch", self.tick, self._settings.checkins.poll_interval_s)

    async def tick(self) -> CheckinResult:
        """One pass: schedule, publish, settle."""
        now = self._clock.now()
        result = CheckinResult()
        for at in self._settings.checkins.times:
            result.scheduled += await self._scheduled(at, now)
        result.published = await self._publish(now)
        await self._settle(now, result)
        return result

    async def _scheduled(self, at: str, now: datetime) -> int:
        job = f"checkin-{at}"
        zone = self._settings.notify.timezone
        async with self._db.transaction() as tx:
            due = await claim_due_run(
                tx, job, now, first=next_reminder(now - timedelta(seconds=1), at, zone),
                following=next_reminder(now, at, zone), instance=self._settings.instance)
        if due is None:
            return 0
        homes = await self._db.fetch_all(
            "SELECT DISTINCT h.id FROM households h JOIN devices d ON d.household_id = h.id "
            "WHERE h.armed = 1 AND h.purged_at IS NULL AND d.revoked_at IS NULL ORDER BY h.id")
        count = 0
        for home in homes:
            count += len(await request_checkin(self._db, int(home["id"]), actor="schedule",
                                               window_s=self._settings.checkins.window_s,
                                               now=now))
        return count

    async def _publish(self, now: datetime) -> int:
        due = await self._db.fetch_all(
            "SELECT id, device_id, command_id, requested_at, window_s FROM checkins "
            "WHERE published_at IS NULL AND outcome IS NULL AND requested_at <= ? ORDER BY id",
            (to_ts(now),))
        sent = 0
        for row in due:
            async with self._db.transaction() as tx:
                won = await tx.execute("UPDATE checkins SET published_at = ? WHERE id = ? "
                                       "AND published_at IS NULL", (to_ts(now), row["id"]))
            if not won:
                continue
            command = CheckinCommand(device_id=row["device_id"],
                                     command_id=UUID(str(row["command_id"])),
                                     issued_at=from_ts(row["requested_at"]),
                                     window_s=float(row["window_s"]))
            self._publisher.publish(command_topic(row["device_id"], "checkin"), encode(command),
                                    qos=1, retain=False)
            log.info("check-in sent", extra={"device_id": row["device_id"],
                                             "checkin_id": row["id"]})
            sent += 1
        return sent

    async def _settle(self, now: datetime, result: CheckinResult) -> None:
        open_rows = await self._db.fetch_all(
            "SELECT c.*, h.armed FROM checkins c JOIN households h ON h.id = c.household_id "
            "WHERE c.published_at IS NOT NULL AND (c.outcome IS NULL "
            "OR (c.outcome = 'left' AND c.incident_id IS NULL AND c.context IS NULL)) "
            "ORDER BY c.id")
        grace = timedelta(seconds=self._settings.checkins.answer_grace_s)
        for row in open_rows:
            over = now >= from_ts(row["deadline_at"]) + grace
            if row["outcome"] == "left":
                # Recorded, waiting for the exit's breach to take it (see the module doc).
                if over or not row["armed"]:
                    await self._own_incident(row, now)
                continue
            outcome = await self._reported(row)
            if outcome is None and over:
                outcome = "no_answer"
            if outcome is None:
                continue
            if outcome == "present":
                result.present += await self._record(row, outcome, now, missed=False)
            elif outcome == "left" and row["armed"] and not over:
                result.missed += await self._record(row, outcome, now, missed=False)
            else:
                # (Unless a breach took the check-in meanwhile: see _record.)
                result.missed += await self._record(row, outcome, now, missed=True)

    async def _own_incident(self, row: Row, now: datetime) -> None:
        """A ``left`` check-in no breach took nor allowed exit explained: its own
        ``missed_checkin`` incident."""
        async with self._db.transaction() as tx:
            if await self._taken(tx, row) or await self._on_leave(tx, row, "left"):
                return
            incident_id = await self._open(tx, row, "left", now)
        log.warning("check-in missed", extra={"device_id": row["device_id"], "outcome": "left",
                                              "incident_id": incident_id})

    async def _reported(self, row: Row) -> str | None:
        events = await self._db.fetch_all(
            "SELECT payload FROM events WHERE device_id = ? AND kind = 'checkin' "
            "AND received_at >= ? ORDER BY id", (row["device_id"], row["requested_at"]))
        for event in events:
            try:
                payload = json.loads(str(event["payload"]))
            except ValueError:
                continue
            if payload.get("command_id") == row["command_id"]:
                return str(payload.get("checkin") or "absent")
        return None

    async def _record(self, row: Row, outcome: str, now: datetime, *, missed: bool) -> int:
        async with self._db.transaction() as tx:
            taken = await self._taken(tx, row)
            won = await tx.execute("UPDATE checkins SET outcome = ?, outcome_at = ? WHERE id = ? "
                                   "AND outcome IS NULL", (outcome, to_ts(now), row["id"]))
            if not won or not missed or taken:
                return int(bool(won))
            if await self._on_leave(tx, row, outcome):
                return 1
            incident_id = await self._open(tx, row, outcome, now)
        log.warning("check-in missed", extra={"device_id": row["device_id"], "outcome": outcome,
                                              "incident_id": incident_id})
        return 1

    @staticmethod
    async def _taken(tx: Transaction, row: Row) -> bool:
        """Whether a breach took the check-in (somebody went out during it: that incident
        is the worker's one), or an allowed exit explained it (``context``: no incident).
        Takes the household's row first, as the rules do (rules._lock_households), so an
        exit being stored meanwhile has either done so already or waits for this
        transaction."""
        await tx.execute("UPDATE households SET armed = armed WHERE id = ?",
                         (row["household_id"],))
        found = await tx.fetch_one("SELECT incident_id, context FROM checkins WHERE id = ?",
                                   (row["id"],))
        return found is not None and (found["incident_id"] is not None
                                      or found["context"] is not None)

    @staticmethod
    async def _on_leave(tx: Transaction, row: Row, outcome: str) -> bool:
        """Whether the household had a permitted leave in force during the check-in; if so
        the check-in records it (``context`` ``leave``) and opens no incident.

        A leave names no member and lets every exit in its window through, so the server
        cannot know that anybody stayed in: nobody at the door then is what the worker who
        granted it expects, not an alarm (docs/server-domain.md). Called after
        :meth:`_taken`, in the same transaction, so the household's row is held."""
        leave = await leave_overlapping(tx, int(row["household_id"]), row["requested_at"],
                                        row["deadline_at"])
        if leave is None:
            return False
        await tx.execute("UPDATE checkins SET context = 'leave' WHERE id = ? "
                         "AND context IS NULL", (row["id"],))
        log.info("check-in during a permitted leave",
                 extra={"device_id": row["device_id"], "outcome": outcome,
                        "leave_id": leave["id"], "checkin_id": row["id"]})
        return True

    async def _open(self, tx: Transaction, row: Row, outcome: str, now: datetime) -> int:
        """Open the check-in's ``missed_checkin`` incident and queue its alert."""
        incident_id = await open_incident(
            tx, household_id=int(row["household_id"]), device_id=row["device_id"],
            kind=IncidentKind.MISSED_CHECKIN, at=to_ts(now),
            escalation=self._settings.escalation, now=now, detail=outcome)
        await tx.execute("UPDATE checkins SET incident_id = ? WHERE id = ?",
                         (incident_id, row["id"]))
        await queue_alert(tx, incident_id=incident_id, household_id=int(row["household_id"]),
                          context=self._context, escalation=self._settings.escalation, now=now)
        return incident_id

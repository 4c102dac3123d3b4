"""Overstays: a registered visitor still inside past the stay limit opens one incident.

The incident (kind ``visitor_overstay``, medium severity) carries the
registration in its detail, is alerted to the first responder by the duty
roster (the household's grid worker when on shift) and escalates like any
medium incident. The visit row is claimed with a
conditional UPDATE (``incident_id IS NULL``) in the transaction that opens
the incident, so with several instances it opens once (task name
``visit-watch``).
"""

from __future__ import annotations

from datetime import timedelta

from ground.logs import get_logger
from ground.timeutil import from_ts, to_ts
from server.clock import Clock, SystemClock
from server.config import ServerSettings
from server.db.base import Database
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.notification_outbox import NotificationContext, queue_alert
from server.domain.visits import VisitState, registration_text
from server.jobs.periodic import run_periodically

__all__ = ["VisitWatch"]

log = get_logger(__name__)


class VisitWatch:
    """Opens overstay incidents (task name ``visit-watch``)."""

    def __init__(self, db: Database, settings: ServerSettings, clock: Clock | None = None):
        self._db = db
        self._settings = settings
        self._clock = clock or SystemClock()

    async def run(self) -> None:
        """Check for overstays every ``visits.poll_interval_s`` until cancelled."""
        await run_periodically("visit-watch", self.check, self._settings.visits.poll_interval_s)

    async def check(self) -> list[int]:
        """Open an incident for each visitor inside past the limit; return their ids."""
        now = self._clock.now()
        default_s = self._settings.visits.stay_limit_min * 60
        # Candidates by the shortest possible limit; each row checks its own below.
        candidates = await self._db.fetch_all(
            "SELECT v.*, h.armed, h.worker_id FROM visits v "
            "JOIN households h ON h.id = v.household_id "
            "WHERE v.state = ? AND v.incident_id IS NULL AND v.inside_since IS NOT NULL "
            "ORDER BY v.inside_since", (VisitState.INSIDE.value,))
        opened = []
        for visit in candidates:
            limit_s = int(visit["stay_limit_s"] or default_s)
            if from_ts(visit["inside_since"]) + timedelta(seconds=limit_s) > now:
                continue
            if not visit["armed"]:
                continue
            incident_id = await self._open(visit, limit_s, now_ts=to_ts(now))
            if incident_id is not None:
                opened.append(incident_id)
        return opened

    async def _open(self, visit: dict[str, object], limit_s: int, now_ts: str) -> int | None:
        detail = (f"{registration_text(visit)}; inside since {visit['inside_since']}, "
                  f"limit {limit_s // 60} min, {visit['entries']} in / {visit['exits']} out")
        try:
            return await self._open_claimed(visit, detail, now_ts)
        except _LostClaimError:
            return None

    async def _open_claimed(self, visit: dict[str, object], detail: str, now_ts: str) -> int:
        async with self._db.transaction() as tx:
            household_id = int(str(visit["household_id"]))
            incident_id = await open_incident(
                tx, household_id=household_id, device_id=None,
                kind=IncidentKind.VISITOR_OVERSTAY, at=now_ts,
                escalation=self._settings.escalation, now=self._clock.now(), detail=detail)
            won = await tx.execute(
                "UPDATE visits SET incident_id = ? WHERE id = ? AND incident_id IS NULL",
                (incident_id, visit["id"]))
            if not won:
                raise _LostClaimError  # another instance opened it: roll this one back
            # The first responder by the duty roster, like any incident's alert.
            queued = await queue_alert(
                tx, incident_id=incident_id, household_id=household_id,
                context=NotificationContext.of(self._settings),
                escalation=self._settings.escalation, now=self._clock.now())
        log.info("registered visitor overstayed", extra={
            "visit_id": visit["id"], "incident_id": incident_id, "notifications": queued})
        return incident_id


class _LostClaimError(Exception):
    """The visit was claimed by another instance in the meantime."""

"""Daily follow-ups recorded by grid workers: temperature and symptoms per member, a note.

A temperature at or above the fever threshold (``[followups] fever_c``,
default 37.3 °C) opens one *fever* incident for the follow-up, in the same
transaction, and queues its alert. Who hears of it: the health station's
worker (``[followups] health_worker_id``) when one is configured and active,
else the household's grid worker. A fever is a health matter, not a door
matter, so the grid worker is the fallback rather than the first recipient;
if nobody acknowledges, it escalates like any medium-severity incident.

Readings are keyed by member name (the household's ``members``); a household
that lists no members is followed up as a whole under :data:`HOUSEHOLD_KEY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.logs import get_logger
from ground.timeutil import now_ts, utcnow
from server.config import EscalationSettings, ServerSettings
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import dumps, fetch_required, loads_dict, loads_list, when
from server.domain.errors import InvalidChangeError
from server.domain.incident_opening import IncidentKind, open_incident
from server.domain.notification_outbox import NotificationContext, Purpose, queue_notifications

__all__ = [
    "HOUSEHOLD_KEY",
    "FeverRule",
    "FollowUp",
    "FollowUpIn",
    "FollowUpUpdate",
    "list_followups",
    "record_followup",
    "update_followup",
]

log = get_logger(__name__)

# The reading of a household that lists no members (and of pre-per-member rows
# whose household had several members: see migration 48).
HOUSEHOLD_KEY = "household"

# Body temperatures outside this range are typing errors, not fevers.
_MIN_C, _MAX_C = 34.0, 43.0


def _check_temperatures(value: dict[str, float]) -> dict[str, float]:
    for member, celsius in value.items():
        if not member.strip():
            raise ValueError("a temperature needs the member's name")
        if not _MIN_C <= celsius <= _MAX_C:
            raise ValueError(f"temperature {celsius} of {member} is not a body temperature "
                             f"({_MIN_C}-{_MAX_C} °C)")
    return value


def _check_symptoms(value: dict[str, str]) -> dict[str, str]:
    return {m.strip(): s.strip()[:500] for m, s in value.items() if m.strip() and s.strip()}


@dataclass(frozen=True, slots=True)
class FeverRule:
    """When a reading is a fever, who is told, and how notifications are written."""

    threshold_c: float = 37.3
    health_worker_id: int | None = None
    context: NotificationContext = field(
        default_factory=lambda: NotificationContext("http://127.0.0.1:8080", "Asia/Shanghai"))
    escalation: EscalationSettings | None = None

    @staticmethod
    def of(settings: ServerSettings) -> FeverRule:
        """The rule the server's settings describe."""
        return FeverRule(settings.followups.fever_c, settings.followups.health_worker_id,
                         NotificationContext.of(settings), settings.escalation)

    def fevers(self, temperatures: dict[str, float]) -> dict[str, float]:
        """The readings at or above the threshold."""
        return {m: c for m, c in temperatures.items() if c >= self.threshold_c}


class FollowUpIn(BaseModel):
    """One day's follow-up of a household."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    household_id: int
    day: date
    temperatures: dict[str, float] = Field(default_factory=dict, description="member -> °C")
    member_symptoms: dict[str, str] = Field(default_factory=dict,
                                            description="member -> symptoms")
    symptoms: str | None = Field(None, max_length=1000, description="Household-level symptoms")
    note: str | None = Field(None, max_length=2000)

    _temps = field_validator("temperatures")(_check_temperatures)
    _symptoms = field_validator("member_symptoms")(_check_symptoms)


class FollowUpUpdate(BaseModel):
    """Corrections to a follow-up (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    temperatures: dict[str, float] | None = None
    member_symptoms: dict[str, str] | None = None
    symptoms: str | None = Field(None, max_length=1000)
    note: str | None = Field(None, max_length=2000)

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else _check_temperatures(value)

    @field_validator("member_symptoms")
    @classmethod
    def _symptoms(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _check_symptoms(value)


class FollowUp(BaseModel):
    """A follow-up as stored."""

    id: int
    household_id: int
    day: date
    recorded_by: str
    recorded_at: datetime
    temperatures: dict[str, float]
    member_symptoms: dict[str, str]
    symptoms: str | None
    note: str | None
    fever_incident_id: int | None

    @classmethod
    def from_row(cls, row: Row) -> FollowUp:
        """Build from a ``followups`` row."""
        fever = row.get("fever_incident_id")
        return cls(
            id=int(row["id"]), household_id=int(row["household_id"]),
            day=date.fromisoformat(row["day"]), recorded_by=row["recorded_by"],
            recorded_at=when(row["recorded_at"]),
            temperatures={k: float(v) for k, v in loads_dict(row["temperatures"]).items()},
            member_symptoms={k: str(v) for k, v in
                             loads_dict(row.get("member_symptoms")).items()},
            symptoms=row["symptoms"], note=row["note"],
            fever_incident_id=None if fever is None else int(fever),
        )


async def _check_members(tx: Transaction, household_id: int, *readings: Iterable[str]) -> None:
    """Readings must name the household's members (or the household, if it lists none)."""
    row = await fetch_required(tx, "household", household_id,
                               "SELECT members, purged_at FROM households WHERE id = ?",
                               (household_id,))
    if row["purged_at"] is not None:
        raise InvalidChangeError("household", household_id, "purged")
    members = {str(m) for m in loads_list(row["members"])} or {HOUSEHOLD_KEY}
    unknown = sorted({m for r in readings for m in r} - members)
    if unknown:
        raise InvalidChangeError("household", household_id, "unknown_member", ", ".join(unknown))


async def _open_fever(tx: Transaction, followup_id: int, household_id: int,
                      fevers: dict[str, float], rule: FeverRule) -> int:
    """Open the follow-up's fever incident and alert the health station (or grid worker)."""
    detail = "; ".join(f"{m} {c:.1f} °C" for m, c in sorted(fevers.items()))
    now = utcnow()
    incident_id = await open_incident(
        tx, household_id=household_id, device_id=None, kind=IncidentKind.FEVER, at=now_ts(),
        escalation=rule.escalation, now=now, detail=detail)
    await tx.execute("UPDATE followups SET fever_incident_id = ? WHERE id = ?",
                     (incident_id, followup_id))
    recipient = None
    if rule.health_worker_id is not None:
        active = await tx.fetch_one("SELECT id FROM workers WHERE id = ? AND active = 1",
                                    (rule.health_worker_id,))
        recipient = None if active is None else int(active["id"])
    if recipient is None:
        row = await tx.fetch_one("SELECT worker_id FROM households WHERE id = ?", (household_id,))
        recipient = None if row is None or row["worker_id"] is None else int(row["worker_id"])
    queued = 0
    if recipient is not None:
        # Not the duty roster's pick: a fever is the health station's (reminders follow this).
        await tx.execute("UPDATE incidents SET responder_id = ? WHERE id = ?",
                         (recipient, incident_id))
        queued = await queue_notifications(tx, incident_id=incident_id, recipients=[recipient],
                                           purpose=Purpose.ALERT, context=rule.context)
    await audit(tx, "system", "followup.fever", f"household:{household_id}",
                f"followup:{followup_id} incident:{incident_id} {detail}")
    log.info("fever incident opened", extra={"incident_id": incident_id,
                                             "household_id": household_id,
                                             "recipient": recipient, "notifications": queued})
    return incident_id


async def record_followup(db: Database, followup: FollowUpIn, *, actor: str,
                          rule: FeverRule | None = None) -> int:
    """Record a follow-up (opening a fever incident if a reading is one); return its id."""
    rule = rule or FeverRule()
    async with db.transaction() as tx:
        await _check_members(tx, followup.household_id, followup.temperatures,
                             followup.member_symptoms)
        row = await tx.fetch_one(
            "INSERT INTO followups (household_id, day, recorded_by, recorded_at, temperatures, "
            "member_symptoms, symptoms, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (followup.household_id, followup.day.isoformat(), actor, now_ts(),
             dumps(followup.temperatures), dumps(followup.member_symptoms), followup.symptoms,
             followup.note),
        )
        assert row is not None
        followup_id = int(row["id"])
        await audit(tx, actor, "followup.record", f"household:{followup.household_id}",
                    f"followup:{followup_id} {followup.day.isoformat()}")
        fevers = rule.fevers(followup.temperatures)
        if fevers:
            await _open_fever(tx, followup_id, followup.household_id, fevers, rule)
        return followup_id


async def update_followup(
    db: Database, followup_id: int, change: FollowUpUpdate, *, actor: str,
    rule: FeverRule | None = None,
) -> FollowUp:
    """Correct a follow-up; a corrected reading that is a fever opens the incident then."""
    rule = rule or FeverRule()
    async with db.transaction() as tx:
        row = await fetch_required(tx, "follow-up", followup_id,
                                   "SELECT * FROM followups WHERE id = ?", (followup_id,))
        current = FollowUp.from_row(row)
        temperatures = current.temperatures if change.temperatures is None else change.temperatures
        member_symptoms = (current.member_symptoms if change.member_symptoms is None
                           else change.member_symptoms)
        await _check_members(tx, current.household_id, change.temperatures or {},
                             change.member_symptoms or {})
        await tx.execute(
            "UPDATE followups SET temperatures = ?, member_symptoms = ?, symptoms = ?, note = ? "
            "WHERE id = ?",
            (dumps(temperatures), dumps(member_symptoms),
             change.symptoms if change.symptoms is not None else current.symptoms,
             change.note if change.note is not None else current.note, followup_id),
        )
        await audit(tx, actor, "followup.update", f"household:{current.household_id}",
                    f"followup:{followup_id}")
        fevers = rule.fevers(temperatures)
        if fevers and current.fever_incident_id is None:
            await _open_fever(tx, followup_id, current.household_id, fevers, rule)
        row = await fetch_required(tx, "follow-up", followup_id,
                                   "SELECT * FROM followups WHERE id = ?", (followup_id,))
        return FollowUp.from_row(row)


async def list_followups(
    db: Database, *, household_id: int | None = None, day_from: date | None = None,
    day_to: date | None = None,
) -> list[FollowUp]:
    """Follow-ups, newest day first."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if household_id is not None:
        where.append("household_id = ?")
        params.append(household_id)
    if day_from is not None:
        where.append("day >= ?")
        params.append(day_from.isoformat())
    if day_to is not None:
        where.append("day <= ?")
        params.append(day_to.isoformat())
    rows = await db.fetch_all(
        f"SELECT * FROM followups WHERE {' AND '.join(where)} ORDER BY day DESC, id DESC",  # noqa: S608
        params,
    )
    return [FollowUp.from_row(r) for r in rows]

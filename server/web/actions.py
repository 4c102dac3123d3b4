"""The dashboard's writes, each one call of the server's domain (``server.domain``).

This module only adapts: it builds the domain's input models from what a
form or the API sent, and turns the domain's refusals into one error type
whose ``key`` names the catalogue message (``web.error.<key>``). The domain
does the conditional UPDATE and writes the audit record in the same
transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime

from pydantic import ValidationError

from ground.errors import DoorwatchError
from server.db.base import Database
from server.domain import followups, households, incidents, leaves, visits
from server.domain.errors import InvalidChangeError, NotFoundError
from server.domain.incident_opening import IncidentOutcome
from server.domain.notification_outbox import NotificationContext
from server.domain.releases import ReleaseContext, ReleaseOutcome

__all__ = [
    "ActionError",
    "Outcome",
    "acknowledge_incident",
    "cancel_visit",
    "end_leave",
    "grant_leave",
    "record_followup",
    "register_visit",
    "release_household",
    "resolve_incident",
]

Outcome = IncidentOutcome


class ActionError(DoorwatchError, ValueError):
    """A change was refused (wrong state, bad value, missing record).

    ``key`` names the message ``web.error.<key>`` in the catalogue; ``status``
    is the HTTP status the API answers with.
    """

    def __init__(self, key: str, detail: str = "", status: int = 409):
        self.key = key
        self.status = status
        super().__init__(f"{key}: {detail}" if detail else key)


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    try:
        yield
    except InvalidChangeError as exc:
        raise ActionError(exc.reason, str(exc)) from exc
    except NotFoundError as exc:
        raise ActionError("not_found", str(exc), status=404) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ActionError("invalid", str(first.get("msg", "")), status=400) from exc


async def acknowledge_incident(db: Database, incident_id: int, actor: str,
                               context: NotificationContext | None = None,
                               worker_id: int | None = None) -> None:
    """open -> acknowledged by ``actor`` (everyone notified is told)."""
    async with _refusals():
        await incidents.acknowledge_incident(db, incident_id, actor=actor, context=context,
                                             worker_id=worker_id)


async def resolve_incident(
    db: Database, incident_id: int, actor: str, outcome: IncidentOutcome, note: str,
    context: NotificationContext | None = None, worker_id: int | None = None,
) -> None:
    """-> resolved with an outcome and a note (everyone notified is told)."""
    async with _refusals():
        await incidents.resolve_incident(db, incident_id, actor=actor, outcome=outcome,
                                         note=note, context=context, worker_id=worker_id)


async def grant_leave(
    db: Database, household_id: int, starts_at: datetime, ends_at: datetime, reason: str,
    actor: str,
) -> int:
    """Permit the household to leave between ``starts_at`` and ``ends_at``; return the id."""
    if ends_at <= starts_at:
        raise ActionError("leave_window", status=400)
    async with _refusals():
        return await leaves.grant_leave(
            db, leaves.LeaveIn(household_id=household_id, starts_at=starts_at,
                               ends_at=ends_at, reason=reason), actor=actor)
    raise AssertionError("unreachable")  # pragma: no cover - _refusals re-raises


async def end_leave(db: Database, leave_id: int, actor: str) -> None:
    """End a permitted leave now."""
    async with _refusals():
        await leaves.end_leave(db, leave_id, actor=actor)


async def record_followup(
    db: Database, household_id: int, day: date, temperatures: dict[str, float],
    symptoms: str, note: str, actor: str, *, rule: followups.FeverRule,
    member_symptoms: dict[str, str] | None = None,
) -> int:
    """Record a day's follow-up of a household (a fever opens its incident); return its id."""
    async with _refusals():
        return await followups.record_followup(
            db, followups.FollowUpIn(household_id=household_id, day=day,
                                     temperatures=temperatures,
                                     member_symptoms=member_symptoms or {},
                                     symptoms=symptoms or None, note=note or None),
            actor=actor, rule=rule)
    raise AssertionError("unreachable")  # pragma: no cover - _refusals re-raises


async def register_visit(
    db: Database, household_id: int, starts_at: datetime, ends_at: datetime, visitor: str,
    organisation: str, purpose: str, stay_limit_min: int | None, actor: str,
) -> int:
    """Register an expected visit (who, organisation, purpose, window); return its id."""
    if ends_at <= starts_at:
        raise ActionError("visit_window", status=400)
    async with _refusals():
        return await visits.register_visit(db, visits.VisitIn(
            household_id=household_id, starts_at=starts_at, ends_at=ends_at, visitor=visitor,
            organisation=organisation or None, purpose=purpose,
            stay_limit_min=stay_limit_min), actor=actor)
    raise AssertionError("unreachable")  # pragma: no cover - _refusals re-raises


async def cancel_visit(db: Database, visit_id: int, actor: str) -> None:
    """Withdraw a visit nobody came in for yet."""
    async with _refusals():
        await visits.cancel_visit(db, visit_id, actor=actor)


async def release_household(
    db: Database, household_id: int, outcome: str, note: str, actor: str,
    context: ReleaseContext,
) -> None:
    """End a quarantine now: release record, devices disarmed, worker told, retention started."""
    try:
        how = ReleaseOutcome(outcome)
    except ValueError:
        raise ActionError("invalid", f"outcome {outcome!r}", status=400) from None
    if not note.strip():
        raise ActionError("note_required", status=400)
    async with _refusals():
        await households.end_quarantine_early(db, household_id, actor=actor, reason=note,
                                              outcome=how, release=context)

"""Incident lifecycle: open -> acknowledged -> resolved, refusals, audit, listing, CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime

import pytest

from broker.messages import EventKind
from ground.timeutil import utcnow
from server.db.base import Database
from server.domain.audit_log import list_audit
from server.domain.errors import InvalidChangeError, NotFoundError
from server.domain.incident_opening import IncidentKind, IncidentOutcome, IncidentState
from server.domain.incidents import (
    IncidentFilter,
    acknowledge_incident,
    export_incidents_csv,
    get_incident,
    incident_events,
    incident_notifications,
    list_incidents,
    resolve_incident,
)
from tests.server.helpers import EventFeeder, Seeded, seed, settings_for


@pytest.fixture
async def opened(db: Database, database_url: str) -> tuple[Seeded, int]:
    """A seeded household with one open breach incident."""
    s = await seed(db)
    feeder = EventFeeder(db, settings_for(database_url))
    result = await feeder.send("door-1", EventKind.EXIT, utcnow())
    return s, result.incidents_opened[0]


async def test_acknowledge_then_resolve(db: Database, opened: tuple[Seeded, int]) -> None:
    _, incident_id = opened
    acked = await acknowledge_incident(db, incident_id, actor="王网格")
    assert acked.state is IncidentState.ACKNOWLEDGED
    assert acked.acknowledged_by == "王网格"
    assert acked.escalate_at is None
    assert acked.remind_at is None
    assert acked.response_s is not None
    done = await resolve_incident(db, incident_id, actor="王网格",
                                  outcome=IncidentOutcome.FALSE_ALARM, note="cat opened door")
    assert done.state is IncidentState.RESOLVED
    assert done.outcome is IncidentOutcome.FALSE_ALARM
    assert done.note == "cat opened door"
    actions = [a.action for a in await list_audit(db, subject=f"incident:{incident_id}")]
    assert actions == ["incident.resolve", "incident.ack", "incident.open"]


async def test_resolving_an_open_incident_acknowledges_it_too(
    db: Database, opened: tuple[Seeded, int]
) -> None:
    _, incident_id = opened
    done = await resolve_incident(db, incident_id, actor="sup",
                                  outcome=IncidentOutcome.AUTHORISED, note="hospital visit")
    assert done.acknowledged_by == "sup"
    assert done.acknowledged_at == done.resolved_at


async def test_wrong_transitions_are_refused(db: Database, opened: tuple[Seeded, int]) -> None:
    _, incident_id = opened
    with pytest.raises(InvalidChangeError, match="note_required"):
        await resolve_incident(db, incident_id, actor="a", outcome=IncidentOutcome.FALSE_ALARM,
                               note="  ")
    await acknowledge_incident(db, incident_id, actor="a")
    with pytest.raises(InvalidChangeError, match="not_open"):
        await acknowledge_incident(db, incident_id, actor="b")
    await resolve_incident(db, incident_id, actor="a", outcome=IncidentOutcome.DEVICE_FAULT,
                           note="sensor loose")
    with pytest.raises(InvalidChangeError, match="already_resolved"):
        await resolve_incident(db, incident_id, actor="b",
                               outcome=IncidentOutcome.CONFIRMED_BREACH, note="x")
    with pytest.raises(InvalidChangeError, match="not_open"):
        await acknowledge_incident(db, incident_id, actor="b")
    with pytest.raises(NotFoundError):
        await acknowledge_incident(db, 999_999, actor="a")


async def test_two_people_acknowledging_at_once_only_one_wins(
    db: Database, opened: tuple[Seeded, int]
) -> None:
    _, incident_id = opened
    results = await asyncio.gather(
        acknowledge_incident(db, incident_id, actor="a"),
        acknowledge_incident(db, incident_id, actor="b"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidChangeError) for r in results) == 1
    assert len(await list_audit(db, action_prefix="incident.ack")) == 1


async def test_listing_filters_and_details(db: Database, opened: tuple[Seeded, int]) -> None:
    s, incident_id = opened
    assert [i.id for i in await list_incidents(db)] == [incident_id]
    assert await list_incidents(db, IncidentFilter(state=IncidentState.RESOLVED)) == []
    assert len(await list_incidents(db, IncidentFilter(grid_id=s.grid,
                                                       kind=IncidentKind.BREACH))) == 1
    assert await list_incidents(db, IncidentFilter(grid_id=s.grid + 100)) == []
    assert len(await list_incidents(db, IncidentFilter(worker_id=s.worker))) == 1
    incident = await get_incident(db, incident_id)
    assert (incident.household, incident.grid, incident.events) == ("张三家", "grid-door-1", 1)
    assert [e.kind for e in await incident_events(db, incident_id)] == ["exit"]
    notes = await incident_notifications(db, incident_id)
    assert [(n.purpose, n.recipient) for n in notes] == [("alert", "王网格")]


async def test_csv_export_has_a_row_per_incident(db: Database,
                                                 opened: tuple[Seeded, int]) -> None:
    _, incident_id = opened
    await acknowledge_incident(db, incident_id, actor="王网格")
    text = export_incidents_csv(await list_incidents(db), "Asia/Shanghai")
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 1
    assert table[0]["household"] == "张三家"
    assert table[0]["state"] == "acknowledged"
    assert table[0]["acknowledged_by"] == "王网格"
    assert datetime.strptime(table[0]["opened_at"], "%Y-%m-%d %H:%M:%S")

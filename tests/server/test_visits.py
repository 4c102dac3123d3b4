"""Expected visits and visitor registration (issue 19, item 3), through the real ingest path.

On SQLite and PostgreSQL: inside a registered window, handovers and entries
are planned (no incident) and the visitor's exit is matched; a visitor inside
past the stay limit opens one overstay incident carrying the registration,
whichever instance looks; an exit after an *unregistered* entry stays a breach
whose notification says a visitor came in N s before and how many came in and
went out since the household was last seen complete.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker.messages import EventKind
from server.clock import ManualClock
from server.db.base import Database
from server.domain.errors import InvalidChangeError
from server.domain.visits import VisitIn, VisitState, cancel_visit, get_visit, register_visit
from server.jobs.visit_watch import VisitWatch
from tests.server.helpers import EventFeeder, rows, scalar, seed, settings_for


async def _visit(db: Database, household: int, now: datetime, **fields: object) -> int:
    return await register_visit(db, VisitIn(
        household_id=household, starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1), visitor="刘护士", organisation="社区卫生服务站",
        purpose="核酸采样", **fields), actor="王网格")  # type: ignore[arg-type]


async def test_planned_entry_handover_and_exit_open_nothing(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db)
    visit_id = await _visit(db, s.household, now)
    await feeder.send("door-1", EventKind.HANDOVER, now)
    await feeder.send("door-1", EventKind.ENTRY, now + timedelta(seconds=10))
    visit = await get_visit(db, visit_id)
    assert visit.state is VisitState.INSIDE
    assert (visit.entries, visit.handovers) == (1, 1)
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=4))
    visit = await get_visit(db, visit_id)
    assert visit.state is VisitState.LEFT
    assert (visit.entries, visit.exits, visit.inside_since) == (1, 1, None)
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 0
    assert await scalar(db, "SELECT COUNT(*) FROM visit_events WHERE visit_id = ?",
                        (visit_id,)) == 3
    # One more exit than came in: somebody of the household left. A breach, as always.
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=6))
    assert [r["kind"] for r in await rows(db, "SELECT kind FROM incidents")] == ["breach"]
    # The registration is audited; a used visit cannot be cancelled.
    assert await scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'visit.register'") == 1
    with pytest.raises(InvalidChangeError):
        await cancel_visit(db, visit_id, actor="王网格")


async def test_outside_the_window_an_entry_is_still_a_visitor(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db)
    visit_id = await _visit(db, s.household, now + timedelta(hours=3))
    await feeder.send("door-1", EventKind.ENTRY, now)
    assert [r["kind"] for r in await rows(db, "SELECT kind FROM incidents")] == ["visitor"]
    await cancel_visit(db, visit_id, actor="王网格")
    assert (await get_visit(db, visit_id)).state is VisitState.CANCELLED


async def test_visitor_inside_past_the_limit_opens_one_incident_with_the_registration(
    db: Database, database_url: str, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db, worker_language="en")
    visit_id = await _visit(db, s.household, now, stay_limit_min=20)
    await feeder.send("door-1", EventKind.ENTRY, now)
    settings = settings_for(database_url, visits={"stay_limit_min": 60})
    clock = ManualClock(now + timedelta(minutes=19))
    one, two = VisitWatch(db, settings, clock), VisitWatch(db, settings, clock)
    assert await one.check() == []
    clock.advance(minutes=1, seconds=1)
    opened = await one.check()
    assert len(opened) == 1
    assert await two.check() == []  # the other instance: already opened
    incident = (await rows(db, "SELECT * FROM incidents"))[0]
    assert incident["kind"] == "visitor_overstay"
    assert incident["severity"] == "medium"
    assert "刘护士 (社区卫生服务站): 核酸采样" in incident["detail"]
    assert (await get_visit(db, visit_id)).incident_id == incident["id"]
    sent = await rows(db, "SELECT worker_id, title, body FROM notifications")
    assert [n["worker_id"] for n in sent] == [s.worker]
    assert sent[0]["title"].startswith("[Visitor still inside] 张三家: 刘护士")
    assert "stayed inside past the limit" in sent[0]["body"]
    # The visitor leaves at last: matched, no breach.
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=25))
    assert await scalar(db, "SELECT COUNT(*) FROM incidents") == 1


async def test_exit_after_an_unregistered_entry_is_a_breach_that_says_so(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    s = await seed(db, worker_language="en")
    await feeder.send("door-1", EventKind.ENTRY, now)
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(seconds=17))
    incident = (await rows(db, "SELECT id, kind, visitor_context FROM incidents"))[0]
    assert incident["kind"] == "breach"  # the visitor incident, upgraded
    bodies = [n["body"] for n in await rows(
        db, "SELECT body FROM notifications WHERE incident_id = ? ORDER BY id",
        (incident["id"],))]
    assert len(bodies) == 2  # visitor, then the upgrade to a breach
    assert "an unregistered person came in 17 s before this exit" in bodies[1]
    assert ("Since the household was last seen complete (the start of the quarantine), "
            "1 came in and 1 went out (this exit included)") in bodies[1]
    assert "came in" not in bodies[0]
    # A plain breach (nobody came in first) says nothing of visitors.
    await seed(db, device="door-2")
    await feeder.send("door-2", EventKind.EXIT, now)
    plain = await rows(db, "SELECT visitor_context FROM incidents WHERE device_id = 'door-2'")
    assert plain[0]["visitor_context"] is None
    assert s.worker


async def test_complete_household_resets_the_count(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    # A resident left and came back (complete again at +60 s), then a visitor came in.
    await feeder.send("door-1", EventKind.EXIT, now)
    await feeder.send("door-1", EventKind.ENTRY, now + timedelta(seconds=60))
    await feeder.send("door-1", EventKind.ENTRY, now + timedelta(minutes=30))
    await feeder.send("door-1", EventKind.EXIT, now + timedelta(minutes=30, seconds=40))
    contexts = [r["visitor_context"] for r in await rows(
        db, "SELECT visitor_context FROM incidents WHERE visitor_context IS NOT NULL")]
    assert len(contexts) == 1
    assert '"entered_s_before": 40' in contexts[0]
    assert '"came_in": 1' in contexts[0]
    assert '"went_out": 1' in contexts[0]
    assert '"complete_at": null' not in contexts[0]

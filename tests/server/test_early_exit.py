"""Early exits (wire v2): the verdict updates the early report's incident, never a second one.

Through the real ingest path, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from broker.messages import EpisodeInfo, EventKind, PassageInfo
from server.db.base import Database
from tests.server.helpers import EventFeeder, rows, scalar, seed


def _episode(started: datetime, ended: datetime, *passages: tuple[float, str]) -> EpisodeInfo:
    return EpisodeInfo(
        started_at=started, ended_at=ended, door_sensor=True, confidence=0.9,
        passages=[PassageInfo(t=t, direction=d, track=1, confidence=0.9)  # type: ignore[arg-type]
                  for t, d in passages])


def _early(episode: UUID, started: datetime, at: datetime) -> dict[str, Any]:
    return {"v": 2, "episode_id": episode, "report": "early",
            "episode": _episode(started, at, (2.0, "out"))}


def _final(episode: UUID, started: datetime, at: datetime, verdict: str) -> dict[str, Any]:
    passages = [(2.0, "out")] + ([(4.0, "in")] if verdict == "reentry" else [])
    return {"v": 2, "episode_id": episode, "report": "final", "verdict": verdict,
            "episode": _episode(started, at, *passages)}


async def _incidents(db: Database) -> list[dict[str, Any]]:
    return await rows(db, "SELECT id, kind, severity, state, verdict, escalate_at, crossed_at, "
                          "opened_at FROM incidents ORDER BY id")


async def test_confirmed_verdict_updates_the_one_incident(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    episode, started = uuid4(), now - timedelta(seconds=30)
    opened = await feeder.send("door-1", EventKind.EXIT, now - timedelta(seconds=27),
                               **_early(episode, started, now - timedelta(seconds=27)))
    assert len(opened.incidents_opened) == 1
    final = await feeder.send("door-1", EventKind.EXIT, now,
                              **_final(episode, started, now, "confirmed"))
    assert final.incidents_opened == []
    [incident] = await _incidents(db)
    assert (incident["kind"], incident["severity"], incident["state"], incident["verdict"]) == (
        "breach", "high", "open", "confirmed")
    assert incident["escalate_at"] is not None  # a confirmed breach still escalates
    # Both halves listed on the incident, one alert only, the confirmation audited.
    assert await scalar(db, "SELECT COUNT(*) FROM incident_events") == 2
    assert [n["purpose"] for n in await rows(db, "SELECT purpose FROM notifications")] == [
        "alert"]
    actions = [r["action"] for r in await rows(db, "SELECT action FROM audit_log ORDER BY id")]
    assert "incident.confirm" in actions


async def test_the_worker_is_told_when_the_person_crossed(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    started = now - timedelta(seconds=60)
    await feeder.send("door-1", EventKind.EXIT, now, **_early(uuid4(), started, now))
    [incident] = await _incidents(db)
    crossed = started + timedelta(seconds=2)
    assert incident["crossed_at"] is not None
    assert incident["crossed_at"] < incident["opened_at"]
    [body] = [r["body"] for r in await rows(db, "SELECT body FROM notifications")]
    local = crossed.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S")
    opened_local = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S")
    assert local in body
    assert opened_local not in body


@pytest.mark.parametrize("verdict", ["reentry", "handover"])
async def test_withdrawn_verdict_lowers_the_incident_and_tells_who_was_alerted(
    db: Database, feeder: EventFeeder, now: datetime, verdict: str
) -> None:
    s = await seed(db, worker_language="en")
    episode, started = uuid4(), now - timedelta(seconds=12)
    await feeder.send("door-1", EventKind.EXIT, now - timedelta(seconds=9),
                      **_early(episode, started, now - timedelta(seconds=9)))
    result = await feeder.send("door-1", EventKind.HANDOVER, now,
                               **_final(episode, started, now, verdict),
                               detail="came back in 2.0 s after going out")
    assert result.incidents_opened == []
    [incident] = await _incidents(db)
    assert (incident["kind"], incident["severity"], incident["state"], incident["verdict"]) == (
        "breach", "low", "open", verdict)
    assert incident["escalate_at"] is None  # no escalation for a withdrawn alert
    notes = await rows(db, "SELECT worker_id, purpose, title FROM notifications ORDER BY id")
    assert [(int(n["worker_id"]), n["purpose"]) for n in notes] == [
        (s.worker, "alert"), (s.worker, "withdrawn")]
    assert notes[1]["title"].startswith("[Alert withdrawn]")
    detail = await scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'incident.withdraw'")
    assert detail == 1


async def test_verdict_arriving_before_its_early_report_still_makes_one_incident(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    episode, started = uuid4(), now - timedelta(seconds=12)
    early = feeder.event("door-1", EventKind.EXIT, now - timedelta(seconds=9), seq=1,
                         **_early(episode, started, now - timedelta(seconds=9)))
    final = feeder.event("door-1", EventKind.HANDOVER, now, seq=2,
                         **_final(episode, started, now, "reentry"))
    await feeder.ingestor.process([final])
    assert await _incidents(db) == []
    await feeder.ingestor.process([early])
    [incident] = await _incidents(db)
    assert (incident["severity"], incident["verdict"]) == ("low", "reentry")
    purposes = [r["purpose"] for r in await rows(db, "SELECT purpose FROM notifications "
                                                     "ORDER BY id")]
    assert purposes == ["alert", "withdrawn"]


async def test_redelivered_reports_change_nothing(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    episode, started = uuid4(), now - timedelta(seconds=12)
    early = feeder.event("door-1", EventKind.EXIT, now, seq=1, **_early(episode, started, now))
    final = feeder.event("door-1", EventKind.EXIT, now, seq=2,
                         **_final(episode, started, now, "confirmed"))
    for batch in ([early], [final], [early, final], [final], [early]):
        await feeder.ingestor.process(batch)
    assert len(await _incidents(db)) == 1
    assert await scalar(db, "SELECT COUNT(*) FROM notifications") == 1


async def test_v1_exit_still_opens_a_breach_beside_v2(
    db: Database, feeder: EventFeeder, now: datetime
) -> None:
    await seed(db)
    await seed(db, device="door-2")
    await feeder.send("door-1", EventKind.EXIT, now)  # a v1 device
    await feeder.send("door-2", EventKind.EXIT, now, **_early(uuid4(), now, now))
    assert [i["kind"] for i in await _incidents(db)] == ["breach", "breach"]
    assert await scalar(db, "SELECT COUNT(*) FROM notifications WHERE purpose = 'alert'") == 2

"""The incident timeline: translated sentences, events and audit entries in time order."""

from __future__ import annotations

import re

import httpx

from server.db.base import Database
from server.web.timeline import timeline
from tests.web.helpers import Seed, login

EVENTS = [
    {"device_id": "door-1", "seq": 1, "kind": "entry", "device_time": "2026-03-01T08:00:00Z"},
    {"device_id": "door-1", "seq": 2, "kind": "exit", "device_time": "2026-03-01T08:00:40Z",
     "report": "early"},
    {"device_id": "door-1", "seq": 3, "kind": "handover", "device_time": "2026-03-01T08:00:50Z",
     "report": "final", "verdict": "reentry", "detail": "came back in 2.0 s after going out"},
]
HISTORY = [
    {"at": "2026-03-01T08:00:01Z", "actor": "system", "action": "incident.open",
     "detail": "visitor household:1"},
    {"at": "2026-03-01T08:00:41Z", "actor": "system", "action": "incident.upgrade",
     "detail": "visitor -> breach"},
    {"at": "2026-03-01T08:00:51Z", "actor": "system", "action": "incident.withdraw",
     "detail": "reentry: came back in 2.0 s after going out"},
    {"at": "2026-03-01T08:01:30Z", "actor": "王网格 (worker:3)", "action": "incident.ack",
     "detail": "one-tap link from 10.0.0.5"},
    {"at": "2026-03-01T08:05:00Z", "actor": "super", "action": "incident.resolve",
     "detail": "false_alarm: 电话核实，本人在家"},
    {"at": "2026-03-01T08:06:00Z", "actor": "system", "action": "incident.someday_new",
     "detail": "raw"},
]


def test_entries_are_in_time_order_and_in_words() -> None:
    steps = timeline(EVENTS, HISTORY, "zh_CN")
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    titles = [s["title"] for s in steps]
    assert titles[:4] == ["有人进入", "产生事件：有人进入", "有人外出（门未关时即报告）",
                          "事件升级：由“有人进入”升级为“违规外出”"]
    assert "已通过通知中的一键确认链接确认" in titles
    assert "处理完毕：误报" in titles or any(t.startswith("处理完毕：") for t in titles)
    text = " ".join(f"{s['title']} {s['sub']} {s['detail']}" for s in steps)
    # No raw keys or machine details left for the known actions.
    assert "incident.upgrade" not in text
    assert "->" not in text
    assert "household:1" not in text
    assert "系统" in text
    # An action the timeline does not know yet is still shown, with its raw detail.
    assert steps[-1]["detail"] == "raw"


def test_english_reader_gets_english() -> None:
    titles = [s["title"] for s in timeline(EVENTS, HISTORY, "en")]
    assert "Upgraded from “Visitor entered” to “Breach: someone left”" in titles
    assert any(t.startswith("The device withdrew the alert: withdrawn") for t in titles)


async def test_incident_page_shows_the_merged_timeline(
    client: httpx.AsyncClient, db: Database, seeded: Seed
) -> None:
    incident = seeded.incidents["east"]
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES "
            "('2000-01-01T00:00:00.000000Z', 'system', 'incident.upgrade', ?, "
            "'visitor -> breach')", (f"incident:{incident}",))
    await login(client, "east")
    page = await client.get(f"/incidents/{incident}")
    assert page.status_code == 200
    section = page.text.split('class="timeline"', 1)[1].split("</ol>", 1)[0]
    assert "事件升级：由“有人进入”升级为“违规外出”" in section
    assert "incident.upgrade" not in section
    times = re.findall(r"<time>([^<]+)</time>", section)
    assert times == sorted(times)
    assert section.index("事件升级") < section.index("产生事件")  # the older entry first

"""A door that already reads open when the agent starts is not an episode by itself.

What a grid worker expects after a power cut or an update: no alarm just
because the agent came up while the door stood open; an alarm if somebody is
seen passing; a tamper if the door stays open past ``door.stuck_open_s``.
Scripted classifier, mock door; the records stay in the durable outbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.classify import ScriptedClassifier
from agent.service import Agent, running_agent
from broker.messages import EventKind
from tests.agent.helpers import device_config, make_agent, outbox_records, records_until
from tests.waiting import wait_until_async


async def _events(agent: Agent) -> list[dict[str, Any]]:
    return [r for r in await outbox_records(agent) if r.get("type") == "event"]


async def _until(agent: Agent, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` events are in the outbox; return them."""
    return await records_until(agent, _events, count, "event(s)")


async def _found_open(agent: Agent) -> None:
    """Wait until the agent has begun (and stored) the episode of the door found open."""
    async def begun() -> bool:
        return agent.episodes.found_open and bool(await agent.outbox.state_items("episode:"))

    await wait_until_async(begun, "the found-open episode begun and stored")


async def _episode_over(agent: Agent) -> None:
    """Wait until the open episode has ended and been judged (its stored copy is gone,
    so the classifier has given its verdict)."""
    async def judged() -> bool:
        return agent.episodes.started is None and not await agent.outbox.state_items("episode:")

    await wait_until_async(judged, "the found-open episode ended and judged")


def _agent(tmp_path: Path, device_id: str, **door: Any) -> tuple[Agent, ScriptedClassifier]:
    config = device_config(tmp_path, None, device_id, "x", door={"quiet_s": 0.3, **door})
    classifier = ScriptedClassifier()
    agent = make_agent(config, classifier=classifier)
    assert agent.door is not None
    agent.door.pin.drive_high()  # the door stands open when the agent starts
    return agent, classifier


async def _open_and_close(agent: Agent) -> None:
    assert agent.door is not None
    agent.door.pin.drive_high()
    await wait_until_async(lambda: agent.episodes.door_open, "the agent to see the door open")
    agent.door.pin.drive_low()


async def test_door_open_at_start_that_closes_reports_nothing(tmp_path: Path) -> None:
    agent, classifier = _agent(tmp_path, "door-found-open")
    assert agent.door is not None
    async with running_agent(agent):
        classifier.script(EventKind.DOOR_OPEN)  # nobody is seen while it stands open
        await _found_open(agent)
        agent.door.pin.drive_low()  # somebody shuts it
        await _episode_over(agent)  # past the quiet time: the found-open episode is over
        classifier.script(EventKind.HANDOVER)
        await _open_and_close(agent)  # a real opening afterwards is reported as usual
        events = await _until(agent, 1)
        assert await agent.outbox.state_items("episode:") == []
    assert [e["kind"] for e in events] == ["handover"]


async def test_somebody_leaving_through_a_door_found_open_is_an_exit(tmp_path: Path) -> None:
    agent, classifier = _agent(tmp_path, "door-found-exit")
    assert agent.door is not None
    async with running_agent(agent):
        classifier.script(EventKind.EXIT)  # the camera sees a person go out
        await _found_open(agent)
        agent.door.pin.drive_low()
        events = await _until(agent, 1)
    assert [e["kind"] for e in events] == ["exit"]


async def test_door_left_open_from_start_is_a_tamper_not_an_episode(tmp_path: Path) -> None:
    agent, classifier = _agent(tmp_path, "door-found-stuck", stuck_open_s=0.5)
    assert agent.door is not None
    async with running_agent(agent):
        classifier.script(EventKind.DOOR_OPEN)
        events = await _until(agent, 1)
        assert [(e["kind"], e.get("tamper")) for e in events] == [
            ("tamper", "door_sensor_disconnected")]
        agent.door.pin.drive_low()  # fixed: the magnet is back
        await _episode_over(agent)
        classifier.script(EventKind.HANDOVER)
        await _open_and_close(agent)
        events = await _until(agent, 2)
    assert [e["kind"] for e in events] == ["tamper", "handover"]

"""Without a reed switch (``door.fitted = false``) the camera starts and ends episodes.

The synthetic camera renders a door leaf swinging open and a person; the
doorway movement starts the episode, stillness for the quiet time ends it,
and the real analyzer's passages decide the verdict. No broker: the records
stay in the durable outbox.
"""

from __future__ import annotations

from typing import Any

from agent.service import Agent, running_agent
from agent.wiring import build_camera, synthetic_source
from sensors.source_synthetic import DoorOpen, SyntheticSource, Walk
from tests.agent.helpers import (
    analysed_for,
    device_config,
    make_agent,
    outbox_records,
    records_until,
)


async def _episodes(agent: Agent) -> list[dict[str, Any]]:
    """Each episode's own event at its end (an exit reported early is not one)."""
    return [r for r in await outbox_records(agent) if r.get("type") == "event" and r.get("episode")
            and r.get("report") != "early"]


async def _until(agent: Agent, count: int) -> list[dict[str, Any]]:
    return await records_until(agent, _episodes, count, "episode event(s)")


def _walk(source: SyntheticSource, kind: str, side: int) -> None:
    source.schedule(DoorOpen(0.0, 5.6))
    source.schedule(Walk(kind, 0.0, duration=4.0, side=side), delay=0.8)  # type: ignore[arg-type]


async def test_camera_movement_starts_and_stillness_ends_episodes(tmp_path: Any) -> None:
    config = device_config(tmp_path, None, "door-noreed", "x", camera={"backend": "synthetic"},
                           door={"fitted": False, "quiet_s": 0.8})
    synthetic = synthetic_source(config)
    agent = make_agent(config, camera=build_camera(config, synthetic))
    assert agent.door is None
    async with running_agent(agent):
        await analysed_for(agent, 2.0)  # the background model learns the empty corridor
        assert agent.open_episode is None  # an empty, still doorway is no episode
        _walk(synthetic, "exit", 1)
        first = await _until(agent, 1)
        assert [(e["kind"], e.get("verdict")) for e in first] == [("exit", "confirmed")]
        # The episode ended by itself once the doorway was still: the next one is separate.
        _walk(synthetic, "handover", -1)
        both = await _until(agent, 2)
    assert [e["kind"] for e in both] == ["exit", "handover"]
    for event in both:
        assert event["episode"]["door_sensor"] is False
        assert event["episode"]["camera_ok"] is True

"""Presence check-in on the device (issue 19 item 2): the real agent with the synthetic
camera and the real analyser, the chime on gpiozero's mock pin.

After a ``checkin`` command the buzzer beeps; a person who comes to the sill and
goes back in is ``present``, one who walks out is ``left``, nobody is ``absent``.
No broker: the ack and the outcome stay in the durable outbox.
"""

from __future__ import annotations

from typing import Any

from agent.service import Agent, running_agent
from agent.wiring import build_camera, synthetic_source
from broker.messages import CheckinCommand, utc_now
from sensors.source_synthetic import DoorOpen, SyntheticSource, Walk
from tests.agent.helpers import analysed_for, device_config, make_agent, outbox_records
from tests.waiting import wait_until_async


def _records(agent: Agent) -> list[dict[str, Any]]:
    return outbox_records(agent)


async def _outcome(agent: Agent) -> dict[str, Any]:
    found: list[dict[str, Any]] = await wait_until_async(
        lambda: [r for r in _records(agent) if r.get("kind") == "checkin"],
        "the check-in outcome in the outbox", 30)
    return found[0]


def _walk(source: SyntheticSource, kind: str) -> None:
    source.schedule(DoorOpen(0.0, 5.6))
    source.schedule(Walk(kind, 0.0, duration=4.0, side=1), delay=0.8)  # type: ignore[arg-type]


def _agent(tmp_path: Any, name: str, *, chime: bool = True) -> tuple[Agent, SyntheticSource]:
    config = device_config(tmp_path, None, name, "x", camera={"backend": "synthetic"},
                           chime={"fitted": chime, "gpio_pin": 22, "beeps": 2, "beep_s": 0.05})
    synthetic = synthetic_source(config)
    return make_agent(config, camera=build_camera(config, synthetic)), synthetic


async def _check_in(agent: Agent, window_s: float) -> CheckinCommand:
    command = CheckinCommand(device_id=agent.device_id, issued_at=utc_now(), window_s=window_s)
    await agent.commands.handle(command)
    return command


async def test_person_at_the_door_after_the_chime_is_present(tmp_path: Any) -> None:
    agent, synthetic = _agent(tmp_path, "door-ci1")
    assert agent.chime is not None
    async with running_agent(agent):
        await analysed_for(agent, 2.0)  # the background model learns the empty corridor
        command = await _check_in(agent, 60)
        _walk(synthetic, "handover")
        outcome = await _outcome(agent)
        acks = [r for r in _records(agent) if r.get("type") == "command_ack"]
    assert outcome["checkin"] == "present"
    assert outcome["command_id"] == str(command.command_id)
    assert [(a["command"], a["ok"], a.get("reason")) for a in acks] == [("checkin", True, None)]
    assert acks[0]["seq"] < outcome["seq"]
    assert agent.chime.sounded == 1
    pin = agent.chime._buzzer.pin  # gpiozero's mock pin: it went high twice (two beeps)
    highs = [s.state for s in pin.states].count(True)
    assert highs == 2


async def test_walking_out_is_left_and_nobody_is_absent(tmp_path: Any) -> None:
    agent, synthetic = _agent(tmp_path, "door-ci2", chime=False)
    async with running_agent(agent):
        await analysed_for(agent, 2.0)
        await _check_in(agent, 60)
        _walk(synthetic, "exit")
        left = await _outcome(agent)
        ack = next(r for r in _records(agent) if r.get("type") == "command_ack")
    assert left["checkin"] == "left"
    assert ack.get("reason") == "no chime fitted: silent check-in"

    quiet, _ = _agent(tmp_path, "door-ci3")
    async with running_agent(quiet):
        await analysed_for(quiet, 1.0)
        await _check_in(quiet, 5)
        absent = await _outcome(quiet)
    assert absent["checkin"] == "absent"

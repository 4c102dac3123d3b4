"""Presence check-in on the device (issue 19 item 2): the real agent with the synthetic
camera and the real analyser, the chime on gpiozero's mock pin.

After a ``checkin`` command the buzzer beeps; a person who comes to the sill from
inside and goes back in is ``present``, one who walks out is ``left``, nobody is
``absent`` — and so is any other movement: the door leaf, people in the corridor, the
previous check-in's resident walking away from the door.
No broker: the ack and the outcome stay in the durable outbox.
"""

from __future__ import annotations

from typing import Any

import pytest
from gpiozero import Buzzer
from gpiozero.exc import GPIOPinInUse

from agent.camera import Timeline
from agent.checkin import judge_presence
from agent.service import Agent, running_agent
from agent.wiring import build_camera, synthetic_source
from broker.messages import CheckinCommand, utc_now
from sensors.analyzer import Passage
from sensors.source_synthetic import SILL_Y, DoorOpen, SyntheticSource, Walk
from tests.agent.helpers import analysed_for, device_config, make_agent, outbox_records
from tests.waiting import wait_until_async


async def _records(agent: Agent) -> list[dict[str, Any]]:
    return await outbox_records(agent)


async def _outcome(agent: Agent, nth: int = 0) -> dict[str, Any]:
    async def outcomes() -> list[dict[str, Any]]:
        return [r for r in await _records(agent) if r.get("kind") == "checkin"][nth:]

    found: list[dict[str, Any]] = await wait_until_async(
        outcomes, f"check-in outcome {nth + 1} in the outbox", 30)
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
    # gpiozero's mock pin, kept: the agent releases it (the buzzer forgets it) when it stops.
    pin = agent.chime._buzzer.pin
    async with running_agent(agent):
        await analysed_for(agent, 2.0)  # the background model learns the empty corridor
        command = await _check_in(agent, 60)
        _walk(synthetic, "handover")
        outcome = await _outcome(agent)
        acks = [r for r in await _records(agent) if r.get("type") == "command_ack"]
    assert outcome["checkin"] == "present"
    assert outcome["command_id"] == str(command.command_id)
    assert [(a["command"], a["ok"], a.get("reason")) for a in acks] == [("checkin", True, None)]
    assert acks[0]["seq"] < outcome["seq"]
    assert agent.chime.sounded == 1
    highs = [s.state for s in pin.states].count(True)  # it went high twice (two beeps)
    assert highs == 2


async def test_walking_out_is_left_and_nobody_is_absent(tmp_path: Any) -> None:
    agent, synthetic = _agent(tmp_path, "door-ci2", chime=False)
    async with running_agent(agent):
        await analysed_for(agent, 2.0)
        await _check_in(agent, 60)
        _walk(synthetic, "exit")
        left = await _outcome(agent)
        ack = next(r for r in await _records(agent) if r.get("type") == "command_ack")
    assert left["checkin"] == "left"
    assert ack.get("reason") == "no chime fitted: silent check-in"

    quiet, _ = _agent(tmp_path, "door-ci3")
    async with running_agent(quiet):
        await analysed_for(quiet, 1.0)
        await _check_in(quiet, 5)
        absent = await _outcome(quiet)
    assert absent["checkin"] == "absent"


def test_only_someone_coming_to_the_door_after_the_chime_is_present() -> None:
    """The judgement on the analyser's timeline alone (monotonic seconds; chime at 100)."""
    timeline = Timeline(fps=25.0)
    since = 100.0
    # Movement after the chime that is nobody coming to the door (a passer-by, the door
    # leaf): a track, but no door visit.
    timeline.tracks.append((100.5, 104.0, False))
    assert judge_presence(timeline, since, window_over=False) is None
    assert judge_presence(timeline, since, window_over=True) == "absent"
    # The previous check-in's resident: at the door before this chime, gone after it.
    timeline.tracks.append((95.0, 101.0, True))
    timeline.door_visits.append(99.5)
    assert judge_presence(timeline, since, window_over=True) == "absent"
    # Somebody at the door from inside now: present once they went back in and nobody
    # else is moving (who might still go out), or at the end of the window.
    timeline.live_tracks = [(101.0, 103.0)]
    timeline.live_at_door = [102.5]
    assert judge_presence(timeline, since, window_over=False) is None
    assert judge_presence(timeline, since, window_over=True) == "present"
    timeline.live_tracks, timeline.live_at_door = [], []
    timeline.door_visits.append(102.8)
    assert judge_presence(timeline, since, window_over=False) == "present"
    # ... unless somebody went out after the chime.
    timeline.passages.append((103.5, Passage(frame=1, t=0.0, direction="out", track=7,
                                             confidence=0.9)))
    assert judge_presence(timeline, since, window_over=False) == "left"
    # An exit before the chime is not this check-in's.
    assert judge_presence(timeline, 104.0, window_over=True) == "absent"


async def test_movement_that_is_nobody_at_the_door_is_absent(tmp_path: Any) -> None:
    """After the chime the door swings open and shut and two people walk along the
    corridor, one close to the threshold: nobody came to the door from inside."""
    agent, synthetic = _agent(tmp_path, "door-ci4")
    async with running_agent(agent):
        await analysed_for(agent, 2.0)
        await _check_in(agent, 8)
        synthetic.schedule(DoorOpen(0.0, 3.0), delay=0.3)
        synthetic.schedule(Walk("pass", 0.0, duration=3.0), delay=0.5)
        synthetic.schedule(Walk("pass", 0.0, duration=3.0, side=-1, row=SILL_Y + 0.05),
                           delay=3.5)
        outcome = await _outcome(agent)
    assert outcome["checkin"] == "absent"
    assert agent.camera is not None
    with agent.camera.timeline.lock:
        assert agent.camera.timeline.tracks, "the analyser saw the movement"


async def test_a_check_in_right_after_a_present_one_is_not_answered_by_it(
    tmp_path: Any,
) -> None:
    """The clean-clone CI failure of session 6: the second check-in is asked as soon as
    the first is answered, while the door of the first still swings shut and its resident
    is walking back inside. Neither is somebody coming to the door after this chime."""
    agent, synthetic = _agent(tmp_path, "door-ci5")
    async with running_agent(agent):
        await analysed_for(agent, 2.0)
        await _check_in(agent, 30)
        _walk(synthetic, "handover")
        first = await _outcome(agent)
        await _check_in(agent, 6)
        second = await _outcome(agent, 1)
    assert (first["checkin"], second["checkin"]) == ("present", "absent")


async def test_the_buzzer_pin_is_free_once_the_agent_stops(tmp_path: Any) -> None:
    agent, _ = _agent(tmp_path, "door-ci6")
    assert agent.chime is not None
    factory = agent.chime._buzzer.pin_factory  # gpiozero's mock factory, the agent's own
    chime = agent.chime
    async with running_agent(agent):
        await _check_in(agent, 5)
        await wait_until_async(lambda: chime.sounded == 1, "the chime", 10)
        with pytest.raises(GPIOPinInUse):
            Buzzer(22, pin_factory=factory)  # the agent holds it while it runs
    assert agent.chime.sounded == 1
    again = Buzzer(22, pin_factory=factory)  # a restarted agent claims it again
    again.close()

"""Presence check-in on the device: chime, then watch the doorway for a person.

On a ``checkin`` command the device sounds its chime (if one is fitted) and
watches the camera analyser's timeline for ``window_s`` seconds:

* ``left`` — a passage ``out`` was seen after the chime (whatever else);
* ``present`` — a person came to the door from the inside after the chime:
  a track that walked up to the threshold from the home and stood in the
  doorway band (``TrackSummary.at_door``, the analyser's handover test), and
  went back in with no passage out, or was still there when the window closed;
* ``absent`` — nobody did within the window. Other movement does not count:
  the door leaf swinging, someone walking along the corridor, a visitor
  coming from outside, or a resident who was at the door before the chime and
  is walking away from it.

The outcome is a durable event of kind ``checkin`` carrying the command's id.
It is presence only: the analyser sees moving person-sized blobs at the door,
never faces, and nothing identifies who came (docs: README "Presence check-in").
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from agent.camera import Timeline
from agent.recorder import Recorder
from agent.state import DeviceState
from broker.messages import CheckinCommand, Event, EventKind, utc_now
from ground.logs import get_logger
from sensors.chime import Chime

__all__ = ["CheckinWatch", "judge_presence"]

log = get_logger(__name__)

Outcome = Literal["present", "absent", "left"]


def judge_presence(timeline: Timeline, since: float, *, window_over: bool) -> Outcome | None:
    """The check-in's outcome from what the analyser saw after ``since``, or None (wait)."""
    with timeline.lock:
        if any(at >= since and p.direction == "out" for at, p in timeline.passages):
            return "left"
        came = any(at >= since for at in timeline.door_visits)
        at_door = any(at >= since for at in timeline.live_at_door)
        moving = bool(timeline.live_tracks)
    if came and not moving:
        # Came to the door and went back in, and nobody is about who might still go out.
        return "present"
    if window_over:
        return "present" if came or at_door else "absent"
    return None


class CheckinWatch:
    """Runs check-ins for one device (one at a time; a new one replaces a running one)."""

    def __init__(self, device_id: str, state: DeviceState, recorder: Recorder,
                 chime: Chime | None, poll_s: float = 0.25):
        self._device_id = device_id
        self._state = state
        self._recorder = recorder
        self._chime = chime
        self._poll_s = poll_s
        self.outcomes: list[Outcome] = []

    async def run(self, command: CheckinCommand, timeline: Timeline) -> Outcome:
        """Chime, watch, record the outcome event; return the outcome."""
        since = time.monotonic()
        if self._chime is not None:
            try:
                await asyncio.to_thread(self._chime.sound)
            except Exception:  # a broken buzzer must not cost the check-in
                log.exception("chime failed", extra={"device_id": self._device_id})
        deadline = since + command.window_s
        while True:
            over = time.monotonic() >= deadline
            outcome = judge_presence(timeline, since, window_over=over)
            if outcome is not None:
                break
            await asyncio.sleep(self._poll_s)
        at = utc_now()
        detail = f"check-in: {outcome} after {time.monotonic() - since:.0f} s"
        await self._recorder.record(lambda s: Event(
            device_id=self._device_id, seq=s, time=at, kind=EventKind.CHECKIN,
            armed=self._state.armed, checkin=outcome, command_id=command.command_id,
            detail=detail))
        self.outcomes.append(outcome)
        log.info("check-in", extra={"device_id": self._device_id, "outcome": outcome,
                                    "command_id": str(command.command_id)})
        return outcome

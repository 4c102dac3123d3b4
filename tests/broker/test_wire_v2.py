"""Wire v2 (episode reports) beside v1: what is accepted and what is refused, and why."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from broker.messages import (
    Event,
    EventKind,
    decode_device_message,
    decode_record_fields,
    encode,
    utc_now,
)
from broker.topics import parse_topic
from ground.errors import PayloadError

TOPIC = "doorwatch/v1/dev/door-1/event"


def _payload(**fields: Any) -> bytes:
    base = Event(device_id="door-1", seq=1, time=utc_now(), kind=EventKind.EXIT, armed=True)
    data = json.loads(encode(base))
    data.update({k: (str(v) if k == "episode_id" else v) for k, v in fields.items()})
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def _decode(payload: bytes) -> Event:
    info = parse_topic(TOPIC)
    assert info is not None
    message = decode_device_message(info, TOPIC, payload)
    assert isinstance(message, Event)
    return message


def test_v1_event_is_accepted_unchanged() -> None:
    event = _decode(_payload())
    assert (event.v, event.report, event.episode_id) == (1, None, None)


@pytest.mark.parametrize(("report", "kind", "verdict"), [
    ("early", "exit", None), ("final", "exit", "confirmed"), ("final", "handover", "reentry"),
    ("final", "handover", "handover")])
def test_v2_episode_reports_are_accepted(report: str, kind: str, verdict: str | None) -> None:
    episode = uuid4()
    payload = _payload(v=2, episode_id=episode, report=report, kind=kind, verdict=verdict)
    event = _decode(payload)
    assert (event.v, event.report, event.episode_id, event.verdict) == (2, report, episode,
                                                                         verdict)
    info = parse_topic(TOPIC)
    assert info is not None
    fields = decode_record_fields(info, payload)  # the server's fast path agrees
    assert fields is not None
    assert fields["report"] == report


@pytest.mark.parametrize(("fields", "reason"), [
    ({"report": "early", "episode_id": uuid4()}, "need schema version 2"),
    ({"v": 2}, "needs episode_id and report"),
    ({"v": 2, "report": "final", "episode_id": uuid4()}, "verdict goes with report 'final'"),
    ({"v": 2, "report": "early", "episode_id": uuid4(), "verdict": "confirmed"},
     "verdict goes with report 'final'"),
    ({"v": 2, "report": "early", "episode_id": uuid4(), "kind": "entry"},
     "an early report is an exit"),
    ({"v": 3}, "unsupported schema version 3"),
])
def test_inconsistent_versions_are_refused_with_a_reason(fields: dict[str, Any],
                                                         reason: str) -> None:
    payload = _payload(**fields)
    info = parse_topic(TOPIC)
    assert info is not None
    assert decode_record_fields(info, payload) is None
    with pytest.raises(PayloadError, match=reason):
        _decode(payload)


def test_only_events_have_a_version_2() -> None:
    topic = "doorwatch/v1/dev/door-1/status"
    info = parse_topic(topic)
    assert info is not None
    payload = json.dumps({"v": 2, "type": "status", "device_id": "door-1", "state": "online",
                          "time": "2026-01-01T00:00:00Z"}).encode()
    with pytest.raises(PayloadError, match="unsupported schema version 2"):
        decode_device_message(info, topic, payload)

"""The wire contract: topics and message models."""

from __future__ import annotations

import json

import pytest

from broker.messages import (
    ArmCommand,
    Event,
    EventKind,
    Heartbeat,
    decode_command,
    decode_device_message,
    encode,
    json_schemas,
    utc_now,
)
from broker.topics import (
    Channel,
    command_topic,
    device_subscription,
    device_topic,
    parse_topic,
    shared,
)
from ground.errors import PayloadError


def test_topics_round_trip() -> None:
    topic = device_topic("door-1", Channel.EVENT)
    assert topic == "doorwatch/v1/dev/door-1/event"
    info = parse_topic(topic)
    assert (info.device_id, info.channel) == ("door-1", Channel.EVENT)
    assert command_topic("door-1", "arm") == "doorwatch/v1/cmd/door-1/arm"
    assert shared("g", device_subscription()) == "$share/g/doorwatch/v1/dev/+/+"


@pytest.mark.parametrize("bad", ["DOOR", "a", "door/1", "door+1", "door#", "x" * 70])
def test_device_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid device id"):
        device_topic(bad, Channel.EVENT)


@pytest.mark.parametrize("topic", ["doorwatch/v2/dev/door-1/event", "doorwatch/v1/dev/door-1",
                                   "doorwatch/v1/dev/door-1/teleport", "other/v1/dev/d-1/event"])
def test_foreign_topics_are_payload_errors(topic: str) -> None:
    with pytest.raises(PayloadError):
        parse_topic(topic)


def test_event_encodes_and_decodes_identically() -> None:
    event = Event(device_id="door-1", seq=7, time=utc_now(), kind=EventKind.EXIT, armed=True)
    topic = device_topic("door-1", Channel.EVENT)
    decoded = decode_device_message(parse_topic(topic), topic, encode(event))
    assert decoded == event


def test_heartbeat_on_event_channel_is_refused() -> None:
    beat = Heartbeat(device_id="door-1", time=utc_now(), uptime_s=1, armed=True, last_seq=0,
                     outbox_depth=0, firmware_version="1")
    topic = device_topic("door-1", Channel.EVENT)
    with pytest.raises(PayloadError, match="not allowed on channel"):
        decode_device_message(parse_topic(topic), topic, encode(beat))


def test_naive_time_is_refused() -> None:
    payload = json.loads(encode(Event(device_id="door-1", seq=1, time=utc_now(),
                                      kind=EventKind.EXIT, armed=True)))
    payload["time"] = "2026-01-01T08:00:00"
    topic = device_topic("door-1", Channel.EVENT)
    with pytest.raises(PayloadError, match="time"):
        decode_device_message(parse_topic(topic), topic, json.dumps(payload).encode())


def test_command_round_trip_and_schema_lists_every_message() -> None:
    arm = ArmCommand(device_id="door-1", issued_at=utc_now())
    assert decode_command(command_topic("door-1", "arm"), encode(arm)) == arm
    assert {"Event", "CommandAck", "Heartbeat", "Status", "Snapshot", "Command"} <= set(
        json_schemas())

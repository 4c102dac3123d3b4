"""Property-based fuzzing of the wire boundary (broker/messages.py, broker/topics.py).

Properties: every valid model survives encode -> decode unchanged; any bytes,
any JSON value and any near-valid mutation of a real message either decode to
a valid model fit for the server (its channel, its topic's device, storable
times and payload) or raise PayloadError, never anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from broker.messages import (
    MAX_SEQ,
    CommandAck,
    Event,
    EventKind,
    Heartbeat,
    Snapshot,
    Status,
    decode_command,
    decode_device_message,
    decode_record_fields,
    encode,
    utc_now,
)
from broker.topics import Channel, TopicInfo, device_topic, parse_command_topic, parse_topic
from ground.errors import PayloadError
from ground.timeutil import to_ts
from tests.fuzz.strategies import (
    FUZZ,
    any_bytes,
    commands,
    device_ids,
    json_values,
    mutated,
    valid_for_channel,
)

T = TypeVar("T")
CHANNELS = [c.value for c in Channel]
_ALLOWED = {"event": (Event, CommandAck), "heartbeat": (Heartbeat,), "status": (Status,),
            "snapshot": (Snapshot,)}


def _info(device_id: str, channel: str) -> tuple[TopicInfo, str]:
    topic = device_topic(device_id, Channel(channel))
    return parse_topic(topic), topic


def _outcome(call: Callable[[], T]) -> T | PayloadError:
    """What ``call`` returns, or the PayloadError it raises (anything else propagates)."""
    try:
        return call()
    except PayloadError as exc:
        return exc


def _check_outcome(channel: str, device_id: str, payload: bytes) -> Any:
    """Decode; a model must be one the server can store, anything else a PayloadError."""
    info, topic = _info(device_id, channel)
    model = _outcome(lambda: decode_device_message(info, topic, payload))
    _check_fast_path(info, payload, model)
    if isinstance(model, PayloadError):
        assert model.reason, "a rejection needs a reason for rejected_messages"
        assert model.topic == topic
        return None
    assert isinstance(model, _ALLOWED[channel])
    assert model.device_id == device_id
    # What the server does with an accepted message must not fail either.
    payload.decode("utf-8")
    for name in ("time", "taken_at"):
        if hasattr(model, name):
            to_ts(getattr(model, name))
    assert decode_device_message(info, topic, encode(model)) == model
    return model


def _check_fast_path(info: TopicInfo, payload: bytes, model: Any) -> None:
    """The server's fast path accepts exactly what the full path accepts as a record,
    with the same values."""
    fields = decode_record_fields(info, payload)
    if isinstance(model, Event | CommandAck):
        assert fields == dict(model)
    else:
        assert fields is None


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(data=st.data(), device_id=device_ids)
def test_every_valid_message_round_trips(channel: str, device_id: str, data: st.DataObject) -> None:
    model = data.draw(valid_for_channel(channel, device_id))
    info, topic = _info(device_id, channel)
    _check_fast_path(info, encode(model), decode_device_message(info, topic, encode(model)))
    # Compared as written on the wire: a model built in Python keeps its own zone until
    # it is encoded (as UTC), and Python's == between zones is False for a local time
    # in a DST gap or fold (PEP 495) even when both mean the same instant.
    assert encode(decode_device_message(info, topic, encode(model))) == encode(model)


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(payload=any_bytes)
@example(payload=b'{"v":1,"type":"event","device_id":"door-1","seq":' + b"9" * 30 + b"}")
def test_any_bytes_decode_or_raise_payload_error(channel: str, payload: bytes) -> None:
    _check_outcome(channel, "door-1", payload)


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(value=json_values)
def test_any_json_value_decodes_or_raises_payload_error(channel: str, value: Any) -> None:
    _check_outcome(channel, "door-1", json.dumps(value).encode())


@pytest.mark.parametrize("channel", CHANNELS)
@FUZZ
@given(data=st.data())
def test_near_valid_messages_decode_or_raise_payload_error(
    channel: str, data: st.DataObject
) -> None:
    # Any channel's message on any channel: a type on the wrong topic is a rejection.
    source = data.draw(st.sampled_from(CHANNELS))
    model = data.draw(valid_for_channel(source, "door-1"))
    broken = data.draw(mutated(json.loads(encode(model))))
    payload = json.dumps(broken).encode()
    if data.draw(st.booleans()):  # and sometimes cut short, the way a torn write would
        payload = payload[: data.draw(st.integers(0, len(payload)))]
    _check_outcome(channel, "door-1", payload)


@FUZZ
@given(model=commands)
def test_every_valid_command_round_trips(model: Any) -> None:
    assert encode(decode_command("doorwatch/v1/cmd/x/y", encode(model))) == encode(model)


@FUZZ
@given(payload=any_bytes | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_command_payload_decodes_or_raises_payload_error(payload: bytes) -> None:
    outcome = _outcome(lambda: decode_command("doorwatch/v1/cmd/x/y", payload))
    assert not isinstance(outcome, PayloadError) or outcome.reason


@FUZZ
@given(data=st.data())
def test_near_valid_commands_decode_or_raise_payload_error(data: st.DataObject) -> None:
    broken = data.draw(mutated(json.loads(encode(data.draw(commands)))))
    outcome = _outcome(lambda: decode_command("doorwatch/v1/cmd/x/y", json.dumps(broken).encode()))
    assert not isinstance(outcome, PayloadError) or outcome.reason


@FUZZ
@given(topic=st.text(max_size=80) | st.lists(
    st.sampled_from(["doorwatch", "v1", "dev", "cmd", "door-1", "event", "+", "#", "", "X"]),
    max_size=7).map("/".join))
def test_any_topic_parses_or_raises_payload_error(topic: str) -> None:
    for parse in (parse_topic, parse_command_topic):
        outcome = _outcome(lambda parse=parse: parse(topic))  # type: ignore[misc]
        assert not isinstance(outcome, PayloadError) or outcome.reason


def test_a_record_without_its_event_id_is_rejected() -> None:
    """Otherwise each delivery would draw a new random event_id, and a redelivered copy
    would be refused as another record reusing the seq."""
    info, topic = _info("door-1", "event")
    record = json.loads(encode(Event(device_id="door-1", seq=1, kind=EventKind.EXIT,
                                     armed=True, time=utc_now())))
    assert decode_device_message(info, topic, json.dumps(record).encode())
    del record["event_id"]
    payload = json.dumps(record).encode()
    with pytest.raises(PayloadError, match="event_id"):
        decode_device_message(info, topic, payload)
    assert decode_record_fields(info, payload) is None


def test_seq_beyond_sql_bigint_is_rejected_not_stored() -> None:
    """Found by fuzzing: a seq > 2**63-1 validated, then failed the server's whole batch."""
    info, topic = _info("door-1", "event")
    base = {"v": 1, "type": "event", "device_id": "door-1", "time": "2026-01-01T00:00:00Z",
            "event_id": "5ffb3094-34b7-414e-bba5-f47a058f1149", "kind": "exit", "armed": True}
    assert decode_device_message(info, topic, json.dumps({**base, "seq": MAX_SEQ}).encode())
    with pytest.raises(PayloadError, match="seq"):
        decode_device_message(info, topic, json.dumps({**base, "seq": MAX_SEQ + 1}).encode())


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                  "0001-01-01T00:01:00Z", "1969-12-31T23:59:59Z"])
def test_times_the_server_cannot_store_are_rejected(time: str) -> None:
    """Found by fuzzing: such times validated, then overflowed in to_ts / the fold window."""
    info, topic = _info("door-1", "event")
    payload = {"v": 1, "type": "event", "device_id": "door-1", "seq": 1, "time": time,
               "event_id": "5ffb3094-34b7-414e-bba5-f47a058f1149", "kind": "exit", "armed": True}
    with pytest.raises(PayloadError, match="time"):
        decode_device_message(info, topic, json.dumps(payload).encode())

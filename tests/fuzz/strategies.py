"""Hypothesis strategies shared by the fuzz suite, and its settings profile.

The ``fuzz`` profile keeps the whole suite well under a minute on a 2-core
machine; ``DOORWATCH_FUZZ_PROFILE=fuzz-long`` runs a hundred times more
examples for a deliberate hunt.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from broker.messages import (
    MAX_SEQ,
    ArmCommand,
    CommandAck,
    ConfigUpdateCommand,
    DeviceState,
    DisarmCommand,
    EpisodeInfo,
    Event,
    EventKind,
    Heartbeat,
    PassageInfo,
    PingCommand,
    RotateCredentialsCommand,
    Snapshot,
    SnapshotCommand,
    Status,
    TamperKind,
)

__all__ = [
    "FUZZ",
    "any_bytes",
    "commands",
    "device_ids",
    "json_values",
    "mutated",
    "valid_for_channel",
    "wire_times",
]

settings.register_profile(
    "fuzz", max_examples=150, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)
settings.register_profile("fuzz-long", parent=settings.get_profile("fuzz"), max_examples=15000)
FUZZ = settings.get_profile(os.environ.get("DOORWATCH_FUZZ_PROFILE", "fuzz"))

device_ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{1,63}", fullmatch=True)

# Offsets of whole minutes both ways plus real zones (with their odd historic
# offsets such as LMT +08:05:43): the wire normalizes every time to UTC.
_zones = st.one_of(
    st.just(UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    st.timezones(),
)
wire_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30), timezones=_zones
)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_unit = st.floats(0.0, 1.0)
_text = st.text(max_size=40)

passages = st.builds(PassageInfo, t=st.floats(-86_400.0, 86_400.0),
                     direction=st.sampled_from(["out", "in"]),
                     track=st.integers(0, 2**40), confidence=_unit)
episodes = st.builds(
    EpisodeInfo, started_at=wire_times, ended_at=wire_times, door_sensor=st.booleans(),
    passages=st.lists(passages, max_size=4), confidence=_unit, camera_ok=st.booleans())


def _events(device_id: str) -> st.SearchStrategy[Event]:
    return st.builds(
        Event, device_id=st.just(device_id), seq=st.integers(1, MAX_SEQ), time=wire_times,
        kind=st.sampled_from(EventKind), armed=st.booleans(),
        episode=st.none() | episodes, tamper=st.none() | st.sampled_from(TamperKind),
        detail=st.none() | st.text(max_size=200), snapshot=st.booleans())


def _acks(device_id: str) -> st.SearchStrategy[CommandAck]:
    return st.builds(
        CommandAck, device_id=st.just(device_id), seq=st.integers(1, MAX_SEQ), time=wire_times,
        command_id=st.uuids(), command=st.text(max_size=64), ok=st.booleans(),
        reason=st.none() | _text)


def _heartbeats(device_id: str) -> st.SearchStrategy[Heartbeat]:
    positive = st.floats(0, 1e12)
    return st.builds(
        Heartbeat, device_id=st.just(device_id), time=wire_times, uptime_s=positive,
        armed=st.booleans(), last_seq=st.integers(0, MAX_SEQ), outbox_depth=st.integers(0, 10**9),
        camera_fps=st.none() | positive, cpu_temp_c=st.none() | _finite,
        free_disk_mb=st.none() | positive, clock_offset_s=st.none() | _finite,
        firmware_version=st.text(max_size=64), alarms=st.lists(_text, max_size=20))


def _statuses(device_id: str) -> st.SearchStrategy[Status]:
    return st.builds(Status, device_id=st.just(device_id), state=st.sampled_from(DeviceState),
                     time=wire_times)


def _snapshots(device_id: str) -> st.SearchStrategy[Snapshot]:
    return st.builds(Snapshot, device_id=st.just(device_id), event_id=st.uuids(),
                     taken_at=wire_times, jpeg_b64=st.text(max_size=100))


def valid_for_channel(channel: str, device_id: str) -> st.SearchStrategy[Any]:
    """Any valid model that may arrive on ``channel`` from ``device_id``."""
    if channel == "event":
        return _events(device_id) | _acks(device_id)
    return {"heartbeat": _heartbeats, "status": _statuses,
            "snapshot": _snapshots}[channel](device_id)


def _command_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {"device_id": device_ids, "issued_at": wire_times, "command_id": st.uuids()}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _finite | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20,
)

commands = st.one_of(
    st.builds(ArmCommand, **_command_fields()),
    st.builds(DisarmCommand, **_command_fields()),
    st.builds(SnapshotCommand, **_command_fields()),
    st.builds(PingCommand, **_command_fields()),
    st.builds(ConfigUpdateCommand, config=st.dictionaries(st.text(max_size=12), json_values,
                                                          max_size=5), **_command_fields()),
    st.builds(RotateCredentialsCommand, password=st.text(min_size=16, max_size=256),
              **_command_fields()),
)

# Bytes that look like what breaks parsers: nesting, giant numbers, other encodings.
_nasty = st.sampled_from([
    b"[" * 50_000, b"{\"a\":" * 20_000, b"9" * 5000, b'{"v":1,"seq":' + b"9" * 5000 + b"}",
    b"\xef\xbb\xbf{}", '{"v":1}'.encode("utf-16"), '{"v":1}'.encode("utf-32"), b"NaN",
    b'{"v":1e999}', b'"\\ud800"', b"\x00", b"", b"null", b"{}", b"[]", b'{"v":1}',
])
any_bytes = st.one_of(st.binary(max_size=300), _nasty,
                      json_values.map(lambda v: json.dumps(v).encode()))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one key replaced, dropped, or added (often still almost valid)."""
    out = dict(base)
    keys = sorted(out)
    action = draw(st.sampled_from(["replace", "drop", "add", "version", "type"]))
    if action == "replace":
        out[draw(st.sampled_from(keys))] = draw(json_values)
    elif action == "drop":
        out.pop(draw(st.sampled_from(keys)))
    elif action == "add":
        out[draw(st.text(max_size=10))] = draw(json_values)
    elif action == "version":
        out["v"] = draw(st.sampled_from([0, 2, "1", 1.5, None, True, [1], -1, 10**30]))
    else:
        out["type"] = draw(st.sampled_from(["event", "command_ack", "heartbeat", "status",
                                            "snapshot", "command", "", None]))
    return out

"""Stored timestamps: one fixed-width UTC text for every aware datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.messages import Event
from ground.timeutil import from_ts, to_ts

# Offsets up to a day either side, with seconds and microseconds (historic LMT offsets).
_OFFSETS = st.timedeltas(min_value=timedelta(hours=-23, minutes=59),
                         max_value=timedelta(hours=23, minutes=59)).map(timezone)


def _reference(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
                    timezones=_OFFSETS))
def test_any_aware_datetime_is_stored_as_utc_text_with_microseconds(moment: datetime) -> None:
    text = to_ts(moment)
    assert text == _reference(moment)
    assert len(text) == 27
    assert from_ts(text) == moment


@pytest.mark.parametrize("wire", [
    "2026-01-31T08:00:00Z", "2026-01-31T08:00:00.5Z", "2026-01-31T08:00:00.000001Z",
    "2026-01-31T09:00:00+01:00", "2026-01-31T08:00:00-00:00", "1970-01-01T00:00:00Z",
])
def test_wire_times_as_pydantic_parses_them(wire: str) -> None:
    # Devices' times arrive as pydantic-core datetimes (its own tzinfo class).
    event = Event.model_validate({"device_id": "dev-1", "seq": 1, "time": wire,
                                  "kind": "exit", "armed": True})
    assert to_ts(event.time) == _reference(event.time)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_ts(datetime(2026, 1, 1))

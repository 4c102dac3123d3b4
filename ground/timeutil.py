"""Timestamps as stored and compared: ISO 8601 UTC text with microseconds.

One fixed-width format sorts correctly as text in SQLite and PostgreSQL
alike, so the same SQL works on both.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic_core import to_jsonable_python

__all__ = ["from_ts", "now_ts", "to_ts", "utcnow"]

_WIDTH = len("2026-01-31T08:00:00.000000Z")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def to_ts(moment: datetime) -> str:
    """Format an aware datetime as stored text (``2026-01-31T08:00:00.000000Z``)."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime: doorwatch stores only aware times")
    if offset:
        moment = moment.astimezone(UTC)
    # pydantic-core's formatter (Rust) is three times as fast as isoformat(timespec=...)
    # and the ingest path calls this per event (devices send UTC, so the conversion above
    # is rare). It writes UTC as "Z" and leaves out a zero fraction, which is put back
    # for the fixed width.
    text: str = to_jsonable_python(moment)
    return text if len(text) == _WIDTH else text[:-1] + ".000000Z"


def from_ts(text: str) -> datetime:
    """Parse stored text back into an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def now_ts() -> str:
    """The current time as stored text."""
    return to_ts(utcnow())

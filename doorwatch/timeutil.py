"""Timestamps as stored and compared: ISO 8601 UTC text with microseconds.

One fixed-width format sorts correctly as text in SQLite and PostgreSQL
alike, so the same SQL works on both.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["from_ts", "now_ts", "to_ts", "utcnow"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def to_ts(moment: datetime) -> str:
    """Format an aware datetime as stored text (``2026-01-31T08:00:00.000000Z``)."""
    if moment.tzinfo is UTC:  # wire models are normalized to UTC already: the common case
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    if moment.tzinfo is None:
        raise ValueError("naive datetime: doorwatch stores only aware times")
    # isoformat is C and twice as fast as strftime; the ingest path calls this per event.
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def from_ts(text: str) -> datetime:
    """Parse stored text back into an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def now_ts() -> str:
    """The current time as stored text."""
    return to_ts(utcnow())

"""The 64-bit key an event_id is kept unique by.

``events.event_id`` (a UUID's 36 characters of text) must be stored once
(issue 17, item 12). A unique index on that text made every insert a random
write into an index of ~50-byte entries; batches of random UUIDs dirty a page
of it per event once the table is large, and SQLite ingest halved (figures in
bench/NOTES.md). The index is instead on ``(event_key, key_collision)``: the
key is the UUID's two 64-bit halves XORed (all of its random bits folded into
one integer), and ``key_collision`` is 0 except for a record whose key equals
a stored record's while its event_id differs: it is stored with the next
free number, and a reuse of any stored event_id is found by comparing the
full event_id among the rows with its key (server/ingest/conflicts.py).

Every row with a given event_id has the same key, so ``event_key = ? AND
event_id = ?`` finds an event by its id through the index. Events are never
deleted (server/jobs/retention.py keeps them); code that ever deletes events
must keep a row with ``key_collision = 0`` for every key still present.
"""

from __future__ import annotations

from uuid import UUID

__all__ = ["SQL_EVENT_KEY", "event_key", "event_key_of_text"]

_LOW64 = (1 << 64) - 1


def event_key(event_id: UUID) -> int:
    """The signed 64-bit key of ``event_id`` (its halves XORed)."""
    value = event_id.int
    key = (value >> 64) ^ (value & _LOW64)
    return key - (1 << 64) if key >> 63 else key


def event_key_of_text(event_id: str) -> int | None:
    """The key of a stored event_id's text; None if it is not a UUID."""
    try:
        return event_key(UUID(event_id))
    except ValueError:
        return None


def _sqlite_half(hex_digits: str, first: int) -> str:
    # SQLite has no hexadecimal parsing; 16 digits shifted into place (its shifts wrap
    # at 64 bits like two's complement, as Python's signed result does).
    return " | ".join(
        f"((instr('0123456789abcdef', substr({hex_digits}, {first + i}, 1)) - 1) << {60 - 4 * i})"
        for i in range(16))


def _sqlite_key(column: str) -> str:
    digits = f"lower(replace(substr({column}, 1, 36), '-', ''))"
    high, low = f"({_sqlite_half(digits, 1)})", f"({_sqlite_half(digits, 17)})"
    return f"(({high} | {low}) & ~({high} & {low}))"  # XOR


def _postgres_key(column: str) -> str:
    digits = f"replace(substr({column}, 1, 36), '-', '')"
    return (f"(('x' || substr({digits}, 1, 16))::bit(64)::bigint "
            f"# ('x' || substr({digits}, 17, 16))::bit(64)::bigint)")


# The key of the event_id text in column ``event_id`` as SQL, per dialect: for the
# migration that adds the key to stored rows (the first 36 characters: a copy that
# migration 41 renamed ``<uuid>#dup<id>`` gets its UUID's key).
SQL_EVENT_KEY = {"sqlite": _sqlite_key("event_id"), "postgresql": _postgres_key("event_id")}

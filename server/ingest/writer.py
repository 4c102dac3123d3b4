"""The ingest path's own door to the database: a batch writer per backend.

A batch's records go into ``events`` in one bulk insert that skips conflicts
(redeliveries and what server/ingest/conflicts.py sorts out), stamped with
each device's household as of now, and their seqs update the devices' maxima
and the seq gaps (server/ingest/seq_gaps.py). That is nearly all the work of
a backlog drain, so each backend does it in its fastest form:

* SQLite (server/ingest/sqlite_writer.py): synchronous code on the database
  thread, in one hop from the event loop, committing in that same hop when
  the batch needs nothing else (no rules to run, nothing rejected);
* PostgreSQL (server/ingest/postgres_writer.py): asyncpg on the event loop,
  one array per column.

Everything else in the batch's transaction (rejections, rules, incidents,
notifications) runs on the event loop through the general
:class:`server.db.base.Transaction`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.db.base import Transaction

__all__ = ["RECORD_COLUMNS", "BatchWriter", "Inserted", "Probe", "RecordRows", "Written", "seqs_of"]

# The events table's columns as the ingest path inserts them, as (name, SQL type: text
# or bigint); device_id first and household_id last (filled in by the writer);
# key_collision is left at its default, 0.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device_id", "text"), ("seq", "bigint"), ("event_id", "text"), ("event_key", "bigint"),
    ("type", "text"), ("kind", "text"), ("device_time", "text"), ("received_at", "text"),
    ("payload", "text"), ("household_id", "bigint"),
)

# (device_id, seq) -> events.id of the rows a write inserted.
Inserted = dict[tuple[str, int], int]
# A query (plain SQL with ``?`` placeholders, and its parameters) a write runs after the
# insert, for ``done`` to decide with (e.g. which devices expect a registered visit).
Probe = tuple[str, tuple[Any, ...]]


@dataclass(slots=True)
class Written:
    """What a write did."""

    inserted: Inserted
    # The transaction is already committed (it then takes no more statements).
    committed: bool = False
    # The probe's rows.
    probed: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(slots=True)
class RecordRows:
    """Rows for ``events``: ``values`` holds them one after another in one flat list,
    in ``columns`` order (device_id first, household_id last, left None)."""

    values: list[Any]
    columns: Sequence[tuple[str, str]] = RECORD_COLUMNS
    # Statements to run in the same go, each with its parameter tuples (device health).
    also: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)

    @property
    def width(self) -> int:
        """Values per row."""
        return len(self.columns)

    def devices(self) -> list[str]:
        """The distinct device ids, sorted."""
        return sorted(set(self.values[:: self.width]))

    def fill_households(self, households: Mapping[str, Any]) -> None:
        """Stamp each row with its device's household (a retry fills them again)."""
        width = self.width
        self.values[width - 1 :: width] = [households.get(device_id)
                                           for device_id in self.values[::width]]


def seqs_of(inserted: Inserted) -> dict[str, list[int]]:
    """The seqs inserted, per device."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for device_id, seq in inserted:
        seqs[device_id].append(seq)
    return seqs


class BatchWriter(Protocol):
    """Bulk writes of the ingest path, inside a transaction of the writer's database."""

    async def write(self, tx: Transaction, rows: RecordRows,
                    done: Callable[[Written], bool] | None = None,
                    probe: Probe | None = None) -> Written:
        """Insert ``rows`` (conflicts skipped), track their seqs, run ``rows.also``, then
        ``probe``.

        A writer may commit at once when ``done(written)`` says the batch needs
        nothing else (:attr:`Written.committed`); ``tx`` then takes no more
        statements.
        """
        ...

    async def record_seqs(self, tx: Transaction, new_seqs: Mapping[str, list[int]]) -> None:
        """Update the devices' maxima and the seq gaps for records stored otherwise."""
        ...

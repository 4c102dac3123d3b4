"""Ingest's batch writer on SQLite: synchronous, on the database thread, in one hop.

Why synchronous and in one hop, on a thread of our own rather than
aiosqlite's: server/db/sqlite.py. Why packed JSON instead of rows: Python's
sqlite3 gives up and retakes the GIL around every ``sqlite3_step``, so a query
or ``RETURNING`` of a thousand rows waits a thousand times for the event
loop's thread to let go of it; one row holding them all as a JSON array waits
once (figures in bench/NOTES.md).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ground.timeutil import now_ts
from server.db.base import Transaction
from server.db.sqlite import SqliteTransaction
from server.ingest import seq_gaps
from server.ingest.writer import Inserted, Probe, RecordRows, Written, seqs_of

__all__ = ["SqliteBatchWriter"]

# Bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32).
_MAX_PARAMS = 32766


def _scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    cursor = conn.execute(sql, params)
    row = cursor.fetchone()
    cursor.close()
    return row[0]


def _fetch_tuples(conn: sqlite3.Connection, columns: Sequence[str], rest: str,
                  params: Sequence[Any] = ()) -> list[list[Any]]:
    """The rows of ``SELECT <columns> <rest>`` (plain text, integer or null columns), all
    packed into one JSON row by SQLite."""
    packed = _scalar(conn, f"SELECT json_group_array(json_array({', '.join(columns)})) {rest}",
                     params)
    rows: list[list[Any]] = json.loads(packed)
    return rows


def _insert_rows(conn: sqlite3.Connection, rows: RecordRows) -> Inserted:
    """Insert ``rows`` skipping conflicts; the (device_id, seq) -> id of those inserted.

    Multi-row VALUES, as many rows per statement as SQLite binds. The rows this
    inserted are those above the highest id before it (we hold the write lock).
    """
    before = _scalar(conn, "SELECT COALESCE(MAX(id), 0) FROM events")
    width = rows.width
    names = ", ".join(name for name, _ in rows.columns)
    row_marks = "(" + ", ".join("?" * width) + ")"
    per_statement = _MAX_PARAMS // width * width
    inserted = 0
    values = rows.values
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        marks = ",".join(row_marks for _ in range(len(chunk) // width))
        cursor = conn.execute(
            f"INSERT INTO events ({names}) VALUES {marks} ON CONFLICT DO NOTHING", chunk)  # noqa: S608 - placeholders only
        inserted += cursor.rowcount
        cursor.close()
    if not inserted:
        return {}
    return {(device_id, int(seq)): int(row_id) for device_id, seq, row_id in _fetch_tuples(
        conn, ("device_id", "seq", "id"), "FROM events WHERE id > ?", (before,))}


def _record_seqs(conn: sqlite3.Connection, new_seqs: Mapping[str, list[int]]) -> None:
    if not new_seqs:
        return
    devices = sorted(new_seqs)
    highest = {device_id: int(top) for device_id, top in _fetch_tuples(
        conn, seq_gaps.HIGHEST, seq_gaps.highest_from(len(devices), lock=False), devices)}
    detected = now_ts()
    plan = seq_gaps.plan(highest, new_seqs, detected)
    for device_id, late in plan.late.items():
        gaps = conn.execute(seq_gaps.GAPS_HIT, (device_id, late[-1], late[0])).fetchall()
        emptied, pieces = seq_gaps.split(device_id, gaps, late, detected)
        conn.executemany(seq_gaps.DELETE_GAP, emptied)
        conn.executemany(seq_gaps.INSERT_GAP, pieces)
    if plan.raised:
        # One statement for the batch, not one per device (each a GIL hand-over).
        cases = " ".join("WHEN ? THEN ? " for _ in plan.raised)
        marks = ",".join("?" for _ in plan.raised)
        conn.execute(
            f"UPDATE devices SET max_seq = CASE device_id {cases}END "  # noqa: S608 - placeholders only
            f"WHERE device_id IN ({marks})",
            [value for device_id, top in plan.raised for value in (device_id, top)]
            + [device_id for device_id, _ in plan.raised]).close()
    conn.executemany(seq_gaps.INSERT_GAP, plan.new_gaps)


def _write(rows: RecordRows, probe: Probe | None, conn: sqlite3.Connection) -> Written:
    inserted: Inserted = {}
    if rows.values:
        devices = rows.devices()
        marks = ",".join("?" for _ in devices)
        rows.fill_households(dict(_fetch_tuples(
            conn, ("device_id", "household_id"), f"FROM devices WHERE device_id IN ({marks})",
            devices)))
        inserted = _insert_rows(conn, rows)
        _record_seqs(conn, seqs_of(inserted))
    for sql, params in rows.also:
        conn.executemany(sql, params)
    probed: list[tuple[Any, ...]] = []
    if probe is not None:
        cursor = conn.execute(*probe)
        probed = cursor.fetchall()
        cursor.close()
    return Written(inserted, probed=probed)


def _tx(tx: Transaction) -> SqliteTransaction:
    if not isinstance(tx, SqliteTransaction):
        raise TypeError(f"SQLite batch writer given a {type(tx).__name__}")
    return tx


class SqliteBatchWriter:
    """:class:`server.ingest.writer.BatchWriter` on SQLite."""

    async def write(self, tx: Transaction, rows: RecordRows,
                    done: Callable[[Written], bool] | None = None,
                    probe: Probe | None = None) -> Written:
        """See :class:`server.ingest.writer.BatchWriter`."""
        sqlite_tx = _tx(tx)
        written = await sqlite_tx.run_sync(functools.partial(_write, rows, probe), done)
        written.committed = sqlite_tx.committed
        return written

    async def record_seqs(self, tx: Transaction, new_seqs: Mapping[str, list[int]]) -> None:
        """See :class:`server.ingest.writer.BatchWriter`."""
        await _tx(tx).run_sync(functools.partial(_record_seqs, new_seqs=new_seqs))

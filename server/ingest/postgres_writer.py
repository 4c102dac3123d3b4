"""Ingest's batch writer on PostgreSQL: asyncpg on the event loop, arrays per column.

The insert sends one array per column through ``unnest()``: the statement
text is the same for every batch (prepared once, not re-planned per row
count) and asyncpg encodes ten arrays instead of tens of thousands of
parameters; the inserted rows come back as one row of arrays, which asyncpg
decodes in C (a record per row cost the event loop about as much as encoding
the insert). Figures in bench/NOTES.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from ground.timeutil import now_ts
from server.db.base import Transaction
from server.db.postgres import PostgresTransaction, translate_placeholders
from server.ingest import seq_gaps
from server.ingest.writer import Inserted, Probe, RecordRows, Written, seqs_of

__all__ = ["PostgresBatchWriter"]


async def _insert_rows(conn: Any, rows: RecordRows) -> Inserted:
    width = rows.width
    names = ", ".join(name for name, _ in rows.columns)
    arrays = ", ".join(f"${i}::{sql_type}[]" for i, (_, sql_type) in enumerate(rows.columns, 1))
    insert = f"INSERT INTO events ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608 - placeholders only
    arguments = [rows.values[i::width] for i in range(width)]

    async def run(statement: str) -> Inserted:
        packed = await conn.fetchrow(
            f"WITH inserted AS ({statement} RETURNING device_id, seq, id) "  # noqa: S608 - fixed column names
            "SELECT array_agg(device_id), array_agg(seq), array_agg(id) FROM inserted",
            *arguments)
        if packed is None or packed[0] is None:
            return {}
        return {(device_id, int(seq)): int(row_id)
                for device_id, seq, row_id in zip(*packed, strict=True)}

    # Optimistically without the ON CONFLICT clause: nearly every batch is all new rows,
    # and the clause's speculative insertion costs PostgreSQL more per batch. Under a
    # savepoint a unique violation (a redelivered record) undoes only this insert,
    # which is then done again with the clause.
    try:
        async with conn.transaction():
            return await run(insert)
    except asyncpg.UniqueViolationError:
        return await run(f"{insert} ON CONFLICT DO NOTHING")


async def _record_seqs(conn: Any, new_seqs: Mapping[str, list[int]]) -> None:
    if not new_seqs:
        return
    devices = sorted(new_seqs)
    # Several server instances may store records of one device at once (shared
    # subscription): the rows stay locked until commit.
    rest = seq_gaps.highest_from(len(devices), lock=True)
    highest = {record[0]: int(record[1]) for record in await conn.fetch(
        translate_placeholders(f"SELECT {', '.join(seq_gaps.HIGHEST)} {rest}"), *devices)}
    detected = now_ts()
    plan = seq_gaps.plan(highest, new_seqs, detected)
    for device_id, late in plan.late.items():
        gaps = await conn.fetch(translate_placeholders(seq_gaps.GAPS_HIT),
                                device_id, late[-1], late[0])
        emptied, pieces = seq_gaps.split(device_id, gaps, late, detected)
        if emptied:
            await conn.executemany(translate_placeholders(seq_gaps.DELETE_GAP), emptied)
        if pieces:
            await conn.executemany(translate_placeholders(seq_gaps.INSERT_GAP), pieces)
    if plan.raised:
        # Two arrays: the same statement text whatever the number of devices, so asyncpg
        # prepares it once.
        await conn.execute(
            "UPDATE devices SET max_seq = v.top FROM unnest($1::text[], $2::bigint[]) "
            "AS v(device_id, top) WHERE devices.device_id = v.device_id",
            [device_id for device_id, _ in plan.raised], [top for _, top in plan.raised])
    if plan.new_gaps:
        await conn.executemany(translate_placeholders(seq_gaps.INSERT_GAP), plan.new_gaps)


def _connection(tx: Transaction) -> Any:
    if not isinstance(tx, PostgresTransaction):
        raise TypeError(f"PostgreSQL batch writer given a {type(tx).__name__}")
    return tx.connection


class PostgresBatchWriter:
    """:class:`server.ingest.writer.BatchWriter` on PostgreSQL (never commits early)."""

    async def write(self, tx: Transaction, rows: RecordRows,
                    done: Callable[[Written], bool] | None = None,
                    probe: Probe | None = None) -> Written:
        """See :class:`server.ingest.writer.BatchWriter`."""
        conn = _connection(tx)
        inserted: Inserted = {}
        if rows.values:
            devices = rows.devices()
            marks = ",".join(f"${i}" for i in range(1, len(devices) + 1))
            rows.fill_households({record[0]: record[1] for record in await conn.fetch(
                f"SELECT device_id, household_id FROM devices WHERE device_id IN ({marks})",  # noqa: S608 - placeholders only
                *devices)})
            inserted = await _insert_rows(conn, rows)
            await _record_seqs(conn, seqs_of(inserted))
        for sql, params in rows.also:
            if params:
                await conn.executemany(translate_placeholders(sql), params)
        probed: list[tuple[Any, ...]] = []
        if probe is not None:
            probed = [tuple(record) for record in await conn.fetch(
                translate_placeholders(probe[0]), *probe[1])]
        return Written(inserted, probed=probed)

    async def record_seqs(self, tx: Transaction, new_seqs: Mapping[str, list[int]]) -> None:
        """See :class:`server.ingest.writer.BatchWriter`."""
        await _record_seqs(_connection(tx), new_seqs)

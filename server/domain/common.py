"""Helpers shared by the domain modules: time parsing, JSON columns, row lookups."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ground.timeutil import from_ts, to_ts
from server.db.base import Database, Row, Transaction
from server.domain.errors import NotFoundError

__all__ = [
    "dumps",
    "fetch_required",
    "loads_dict",
    "loads_list",
    "parse_local_time",
    "ts_or_none",
    "when",
]


def ts_or_none(moment: datetime | None) -> str | None:
    """Stored text of ``moment``, or None."""
    return None if moment is None else to_ts(moment)


def when(text: str | None) -> datetime | None:
    """Parse stored text, keeping None."""
    return None if text is None else from_ts(text)


def parse_local_time(text: str, timezone: str) -> datetime:
    """Parse ``2026-03-01 08:00`` (or ISO with an offset) as a time in ``timezone``.

    Grid offices write local times; a time with an explicit offset or ``Z`` is
    taken as written.
    """
    value = text.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def dumps(value: Any) -> str:
    """JSON for a TEXT column (Chinese kept readable)."""
    return json.dumps(value, ensure_ascii=False)


def loads_list(text: str | None) -> list[Any]:
    """A JSON list column (empty when NULL)."""
    value = json.loads(text) if text else []
    return value if isinstance(value, list) else []


def loads_dict(text: str | None) -> dict[str, Any]:
    """A JSON object column (empty when NULL)."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


async def fetch_required(
    conn: Database | Transaction, kind: str, ident: object, sql: str, params: tuple[Any, ...]
) -> Row:
    """The first row of ``sql`` or :class:`NotFoundError` naming ``kind`` and ``ident``."""
    row = await conn.fetch_one(sql, params)
    if row is None:
        raise NotFoundError(kind, ident)
    return row

"""CSV export of incidents (the columns supervisors paste into their reports)."""

from __future__ import annotations

from collections.abc import Iterable

from ground.csvsafe import csv_text
from server.db.base import Row
from server.web.render import label, local_time, seconds_between

__all__ = ["CSV_COLUMNS", "incidents_csv"]

CSV_COLUMNS = (
    "id", "opened_at", "kind", "severity", "state", "grid", "household", "address", "device_id",
    "acknowledged_at", "acknowledged_by", "seconds_to_ack", "resolved_at", "resolved_by",
    "outcome", "note",
)


def incidents_csv(rows: Iterable[Row], zone: str, language: str) -> str:
    """Incidents as CSV text with a header row; times in the dashboard's time zone.

    Starts with a UTF-8 byte order mark so spreadsheet programs read the
    Chinese text correctly. Cells go through :func:`ground.csvsafe.safe_cell`
    (no spreadsheet formulas), like every export.
    """
    return csv_text(CSV_COLUMNS, (_row(row, zone, language) for row in rows), bom=True)


def _row(row: Row, zone: str, language: str) -> tuple[object, ...]:
    to_ack = seconds_between(row["opened_at"], row["acknowledged_at"]) \
        if row["acknowledged_at"] else None
    return (
        row["id"], local_time(row["opened_at"], zone),
        label("incident.kind", row["kind"], language), row["severity"],
        label("web.state", row["state"], language), row.get("grid") or "",
        row["household"] or "", row["address"] or "", row["device_id"] or "",
        local_time(row["acknowledged_at"], zone), row["acknowledged_by"] or "",
        "" if to_ack is None else round(to_ack), local_time(row["resolved_at"], zone),
        row["resolved_by"] or "", label("web.outcome", row["outcome"], language),
        row["note"] or "",
    )

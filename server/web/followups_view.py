"""Follow-ups in the dashboard: today's visited / not-visited lists and the CSV export."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from ground.csvsafe import csv_text
from ground.i18n import t
from server.db.base import Database, Row
from server.domain.common import loads_dict
from server.domain.followups import HOUSEHOLD_KEY
from server.web.render import local_time
from server.web.scope import household_scope
from server.web.users import User

__all__ = ["FOLLOWUP_CSV_COLUMNS", "export_rows", "followups_csv", "member_label", "readings",
           "today_lists"]

FOLLOWUP_CSV_COLUMNS = (
    "followup_id", "day", "grid", "household_id", "household", "address", "member",
    "temperature_c", "fever", "symptoms", "household_symptoms", "note", "recorded_by",
    "recorded_at", "fever_incident_id",
)


def member_label(member: str, language: str) -> str:
    """A member's name as shown (the whole-household reading has its own words)."""
    return t("web.followup.household_reading", language) if member == HOUSEHOLD_KEY else member


def readings(row: Row, threshold_c: float) -> list[dict[str, Any]]:
    """One entry per member of a ``followups`` row: temperature, fever, symptoms."""
    temperatures = loads_dict(row["temperatures"])
    symptoms = loads_dict(row.get("member_symptoms"))
    members = list(temperatures) + [m for m in symptoms if m not in temperatures]
    out = []
    for member in members:
        celsius = temperatures.get(member)
        out.append({"member": member,
                    "celsius": None if celsius is None else float(celsius),
                    "fever": celsius is not None and float(celsius) >= threshold_c,
                    "symptoms": str(symptoms.get(member) or "")})
    return out


async def today_lists(db: Database, user: User, today: date) -> tuple[list[Row], list[Row]]:
    """(not visited, visited) households in quarantine (armed) the user may see, for ``today``."""
    scope, params = household_scope(user)
    rows = await db.fetch_all(
        "SELECT h.id, h.name, h.address, h.members, w.name AS worker, g.name AS grid, "  # noqa: S608
        "(SELECT COUNT(*) FROM followups f WHERE f.household_id = h.id AND f.day = ?) AS visits, "
        "(SELECT COUNT(*) FROM followups f WHERE f.household_id = h.id AND f.day = ? "
        " AND f.fever_incident_id IS NOT NULL) AS fevers "
        "FROM households h LEFT JOIN workers w ON w.id = h.worker_id "
        "LEFT JOIN grids g ON g.id = h.grid_id "
        f"WHERE {scope} AND h.purged_at IS NULL AND h.armed = 1 ORDER BY g.name, h.name, h.id",
        [today.isoformat(), today.isoformat(), *params])
    return [r for r in rows if not r["visits"]], [r for r in rows if r["visits"]]


async def export_rows(db: Database, user: User, day_from: date, day_to: date) -> list[Row]:
    """Follow-ups (with household and grid) the user may see, oldest first."""
    scope, params = household_scope(user)
    return await db.fetch_all(
        "SELECT f.*, h.name AS household, h.address, g.name AS grid FROM followups f "  # noqa: S608
        "JOIN households h ON h.id = f.household_id LEFT JOIN grids g ON g.id = h.grid_id "
        f"WHERE f.day >= ? AND f.day <= ? AND {scope} ORDER BY f.day, h.id, f.id",
        [day_from.isoformat(), day_to.isoformat(), *params])


def followups_csv(rows: Iterable[Row], threshold_c: float, zone: str, language: str) -> str:
    """One CSV line per member reading (a follow-up without readings still has one line)."""
    lines: list[tuple[object, ...]] = []
    for row in rows:
        head = (row["id"], row["day"], row["grid"] or "", row["household_id"], row["household"],
                row["address"])
        tail = (row["symptoms"] or "", row["note"] or "", row["recorded_by"],
                local_time(row["recorded_at"], zone), row["fever_incident_id"] or "")
        entries = readings(row, threshold_c) or [
            {"member": "", "celsius": None, "fever": False, "symptoms": ""}]
        for entry in entries:
            lines.append((*head, member_label(entry["member"], language) if entry["member"]
                          else "", "" if entry["celsius"] is None else entry["celsius"],
                          "yes" if entry["fever"] else "no", entry["symptoms"], *tail))
    return csv_text(FOLLOWUP_CSV_COLUMNS, lines, bom=True)

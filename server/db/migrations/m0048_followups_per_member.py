"""Migration 48: follow-ups per household member, and the fever incident a follow-up opened.

Before, the dashboard recorded one temperature per household under a generic
label (``住户`` / ``household``, or ``?``). Such a reading is moved to the
member's name when the household lists exactly one member (then it can only
have been theirs); otherwise it stays a whole-household reading under the one
canonical key ``household``. Symptoms stay in ``symptoms`` (household-level
text); new follow-ups also keep symptoms per member in ``member_symptoms``.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

_LEGACY_KEYS = ("住户", "household", "resident", "?")

# JSON written by server.domain.common.dumps: '{"key": 36.5}' and '["name"]'.
_SINGLE_MEMBER = ("household_id IN (SELECT id FROM households WHERE members LIKE '[\"%\"]' "
                  "AND members NOT LIKE '%\", \"%')")


def _to_member(key: str) -> str:
    return (
        "UPDATE followups SET temperatures = REPLACE(temperatures, '\"" + key + "\":', "  # noqa: S608 - keys fixed here
        "(SELECT SUBSTR(h.members, 2, LENGTH(h.members) - 2) FROM households h "
        "WHERE h.id = followups.household_id) || ':') "
        "WHERE temperatures LIKE '{{\"" + key + "\": %' AND temperatures NOT LIKE '%, \"%' "
        "AND " + _SINGLE_MEMBER
    )


def _to_household(key: str) -> str:
    return (
        "UPDATE followups SET temperatures = REPLACE(temperatures, '\"" + key + "\":', "  # noqa: S608 - keys fixed here
        "'\"household\":') WHERE temperatures LIKE '{{\"" + key + "\": %'"
    )


STATEMENTS: list[str] = [
    "ALTER TABLE followups ADD COLUMN member_symptoms TEXT NOT NULL DEFAULT '{{}}'",
    "ALTER TABLE followups ADD COLUMN fever_incident_id {bigint} REFERENCES incidents(id)",
    *(_to_member(k) for k in _LEGACY_KEYS),
    *(_to_household(k) for k in _LEGACY_KEYS if k != "household"),
    "CREATE INDEX followups_day ON followups (day, household_id)",
]

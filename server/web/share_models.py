"""The documented schema of what API tokens read (issue 19, item 6): the health office's view.

Times are ISO 8601 UTC; ``day`` is a local day in the server's
``notify.timezone`` (given in every export). Temperatures are °C. A token
limited to one grid sees that grid's households only.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

__all__ = [
    "SCHEMA_VERSION",
    "DayExport",
    "ShareFollowUp",
    "ShareHousehold",
    "ShareIncident",
    "ShareReading",
    "ShareRelease",
    "ShareVisit",
]

SCHEMA_VERSION = 1


class ShareIncident(BaseModel):
    """An incident: what happened at a household, and how the workers handled it."""

    id: int
    household_id: int | None
    grid: str | None
    kind: str = Field(description="breach, possible_breach, overdue_return, visitor, "
                      "visitor_overstay, device_offline, tamper, fever")
    severity: str
    state: str = Field(description="open, acknowledged or resolved")
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    outcome: str | None


class ShareReading(BaseModel):
    """One member's reading at a follow-up."""

    member: str = Field(description="Member name, or 'household' for a whole-household reading")
    temperature_c: float | None
    fever: bool = Field(description="At or above the configured fever threshold")
    symptoms: str


class ShareFollowUp(BaseModel):
    """A daily follow-up of a household."""

    id: int
    household_id: int
    grid: str | None
    day: date
    recorded_by: str
    recorded_at: datetime
    readings: list[ShareReading]
    household_symptoms: str | None
    note: str | None
    fever_incident_id: int | None


class ShareHousehold(BaseModel):
    """A household in quarantine on the day."""

    id: int
    name: str
    address: str
    grid: str | None
    members: list[str]
    quarantine_start: datetime | None
    quarantine_end: datetime | None
    armed: bool


class ShareRelease(BaseModel):
    """The end of a household's quarantine."""

    household_id: int
    released_at: datetime
    released_by: str
    outcome: str = Field(description="completed, tested_negative, hospitalised, transferred, "
                         "other")
    note: str | None
    retain_until: datetime | None = Field(description="When its personal data is purged")


class ShareVisit(BaseModel):
    """A registered visit (who came, why, what the door saw)."""

    household_id: int
    starts_at: datetime
    ends_at: datetime
    visitor: str
    organisation: str | None
    purpose: str
    state: str = Field(description="expected, inside, left or cancelled")
    entries: int
    exits: int
    overstay_incident_id: int | None


class DayExport(BaseModel):
    """Everything of one local day, for the health office's records."""

    schema_version: int = SCHEMA_VERSION
    day: date
    timezone: str
    generated_at: datetime
    grid: str | None = Field(description="The grid the token is limited to, if any")
    fever_threshold_c: float
    households: list[ShareHousehold] = Field(description="In quarantine at some time that day")
    incidents: list[ShareIncident] = Field(description="Opened that day")
    followups: list[ShareFollowUp] = Field(description="Of that day")
    releases: list[ShareRelease] = Field(description="Released that day")
    visits: list[ShareVisit] = Field(description="Registered windows overlapping that day")

"""Pydantic models at the JSON API's boundary (requests and responses)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from server.domain.releases import ReleaseOutcome
from server.web.actions import Outcome
from server.web.users import Role

__all__ = [
    "AuditOut",
    "ChangePasswordIn",
    "DeviceIn",
    "DeviceOut",
    "EndQuarantineIn",
    "FollowupIn",
    "HouseholdOut",
    "IdOut",
    "IncidentDetailOut",
    "IncidentOut",
    "LeaveIn",
    "LoginIn",
    "PasswordIn",
    "ReplaceDeviceIn",
    "ResolveIn",
    "SessionOut",
    "UserIn",
    "UserOut",
    "WorkerOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LoginIn(_In):
    """Credentials for ``POST /api/login``."""

    username: str = Field(max_length=128)
    password: str = Field(max_length=512)


class UserOut(_Out):
    """A dashboard user."""

    id: int
    username: str
    role: Role
    language: str
    worker_id: int | None
    active: bool = Field(True, description="False: disabled, cannot log in")


class SessionOut(_Out):
    """Who is logged in, and the CSRF token to send as ``X-CSRF-Token`` on changes."""

    user: UserOut
    csrf_token: str


class IdOut(_Out):
    """The id of what was created."""

    id: int


class IncidentOut(_Out):
    """An incident as listed."""

    id: int
    kind: str
    severity: str
    state: str
    household_id: int | None
    household: str | None
    address: str | None
    grid: str | None = None
    device_id: str | None
    opened_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    outcome: str | None
    note: str | None
    # A grouped offline incident's member households the reader may see (empty otherwise).
    group_households: list[int] = Field(default_factory=list)


class IncidentDetailOut(_Out):
    """An incident with its events, notifications and history."""

    incident: IncidentOut
    events: list[dict[str, object]]
    notifications: list[dict[str, object]]
    history: list[dict[str, object]]


class ResolveIn(_In):
    """How an incident ended."""

    outcome: Outcome
    note: str = Field("", max_length=2000)


class EndQuarantineIn(_In):
    """Why a household's quarantine ends early, and how (the release record's outcome)."""

    reason: str = Field(min_length=1, max_length=500)
    outcome: ReleaseOutcome = Field(ReleaseOutcome.OTHER, description="How it ended")


class ReplaceDeviceIn(_In):
    """The device that takes over, and why."""

    new_device_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class HouseholdOut(_Out):
    """A household as listed."""

    id: int
    name: str
    address: str
    armed: bool
    worker_id: int | None
    grid_id: int | None = None
    grid: str | None = None
    quarantine_start: str | None = None
    quarantine_end: str | None = None
    day_n: int | None = None
    day_m: int | None = None
    open_incidents: int = 0
    followups_today: int = 0


class WorkerOut(_Out):
    """A worker (Apprise URLs are not shown: they carry secrets)."""

    id: int
    name: str
    language: str
    phone: str | None = None
    role: str | None = None
    grid_id: int | None = None


class DeviceIn(_In):
    """Assign a provisioned device to a household (``household_id`` None: only check it)."""

    device_id: str = Field(min_length=1, max_length=64)
    household_id: int | None = None


class DeviceOut(_Out):
    """A device with its health."""

    device_id: str
    household_id: int | None
    household: str | None
    online: bool
    status: str | None
    last_heartbeat_at: str | None
    fps: float | None
    temp: float | None
    firmware: str | None
    outbox: int | None


class LeaveIn(_In):
    """A permitted leave."""

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=500)


class FollowupIn(_In):
    """Today's follow-up of a household."""

    temperatures: dict[str, float] = Field(default_factory=dict, description="member -> °C")
    member_symptoms: dict[str, str] = Field(default_factory=dict,
                                            description="member -> symptoms")
    symptoms: str = Field("", max_length=500, description="Household-level symptoms")
    note: str = Field("", max_length=2000)


class AuditOut(_Out):
    """One audit record."""

    id: int
    at: str
    actor: str
    action: str
    subject: str | None
    detail: str | None


class UserIn(_In):
    """A new dashboard user."""

    username: str
    password: str
    role: Role
    language: str | None = None
    worker_id: int | None = None




class PasswordIn(_In):
    """A new password, set by an admin for a user."""

    password: str = Field(max_length=512)


class ChangePasswordIn(_In):
    """One's own password change: the current one proves it is really them."""

    current: str = Field(max_length=512)
    password: str = Field(max_length=512)

"""Server configuration: one strict root model, a section per concern.

Read from a TOML file (``--config``) with environment overrides
(``DOORWATCH_SERVER__MQTT__PASSWORD=...``); unknown keys are errors, so a
typo is reported at start instead of silently falling back to a default.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ground.errors import ConfigError

__all__ = [
    "AmqpSettings",
    "DeviceWatchSettings",
    "EscalationSettings",
    "FollowUpSettings",
    "HttpSettings",
    "IngestSettings",
    "MqttSettings",
    "NotifySettings",
    "RetentionSettings",
    "RuleSettings",
    "ScheduleSettings",
    "ServerSettings",
    "ShareSettings",
    "StormSettings",
    "VisitSettings",
    "load_server_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Section):
    """How the server reaches the broker."""

    host: str = Field("127.0.0.1", description="Broker address")
    port: int = Field(1883, ge=1, le=65535, description="Broker port")
    username: str | None = Field("doorwatch-server", description="Server account on the broker")
    password: SecretStr | None = Field(None, description="Server account password")
    client_id: str = Field(
        default_factory=lambda: f"doorwatch-server-{socket.gethostname()}",
        description="MQTT client id; must be stable across restarts (persistent session) "
        "and unique per server instance",
    )
    protocol: Literal[5, 311] = Field(
        5, description="MQTT protocol version (311 for brokers without v5, e.g. the embedded one)"
    )
    shared_group: str | None = Field(
        None, description="Shared-subscription group when several server instances split the load"
    )
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive")
    tls: bool = Field(
        False, description="Connect with TLS (required unless the broker is on this machine "
        "and offers its loopback-only plaintext listener)"
    )
    ca_file: Path | None = Field(
        None, description="CA certificate the broker's certificate is verified against "
        "(the broker directory's ca.crt); none = the system's trusted CAs"
    )


class AmqpSettings(_Section):
    """How the server reaches a RabbitMQ cluster (``broker = "rabbitmq"``): AMQP 0-9-1."""

    nodes: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:5672"], min_length=1,
        description="Every node's AMQP address as host:port; the link moves to the next "
        "when its node is unreachable")
    username: str = Field("doorwatch-server", description="Server account on the cluster")
    password: SecretStr | None = Field(None, description="Server account password")
    client_id: str = Field(
        default_factory=lambda: f"doorwatch-server-{socket.gethostname()}",
        description="Connection name shown by the broker (per instance, for operators)")
    prefetch: int = Field(
        8000, ge=1, le=65535, description="Messages an instance holds unacknowledged: the "
        "batch being written and the one being prepared (2 x ingest.batch_max) and more")
    tls: bool = Field(False, description="Connect with TLS (amqps)")
    ca_file: Path | None = Field(None, description="CA certificate of the nodes' certificates")


class IngestSettings(_Section):
    """How received messages are batched into database transactions."""

    batch_max: int = Field(2000, ge=1, le=4000, description="Messages per transaction at most")
    batch_wait_ms: float = Field(
        5.0, ge=0, description="How long to wait for more messages before committing a batch"
    )
    max_stored_rejected_bytes: int = Field(
        4096, ge=0, description="Bytes of a rejected payload kept for inspection; a longer "
        "payload is truncated to this and its whole SHA-256 kept beside it"
    )
    rejected_bytes_per_device_day: int = Field(
        1024 * 1024, ge=0, description="Payload bytes of rejected messages kept per device "
        "and UTC day; past it the reason, size and SHA-256 are still kept, the payload not"
    )
    rejected_rows_per_device_day: int = Field(
        50_000, ge=0, description="Rejected messages recorded as rows per device and UTC "
        "day; past it they are only counted (rejected_counts, /metrics) and logged"
    )


class RuleSettings(_Section):
    """What turns events into incidents."""

    fold_window_s: float = Field(
        600, ge=0, description="Events of one household within this window fold into one incident"
    )


class EscalationSettings(_Section):
    """Reminders to the grid worker and escalation to the supervisor until acknowledged."""

    escalate_after_s: float = Field(
        600, gt=0, description="An open incident not acknowledged this long goes to the supervisor"
    )
    remind_every_s: float = Field(
        300, gt=0, description="Everyone told so far (worker, backup, supervisor) is reminded "
        "this often until the incident is acknowledged"
    )
    backup_after_s: float = Field(
        420, gt=0, description="An open incident not acknowledged this long goes to the "
        "backup worker of the first responder's shift (duty roster), if there is one"
    )
    escalate_severities: list[str] = Field(
        default_factory=lambda: ["high", "medium"],
        description="Severities that get reminders and escalation (low ones are notified once)",
    )
    poll_interval_s: float = Field(2.0, gt=0, description="How often due deadlines are checked")


class ScheduleSettings(_Section):
    """Arming and disarming devices by quarantine period; overdue returns from leaves."""

    poll_interval_s: float = Field(
        5.0, gt=0, description="How often periods, leaves and unsent arm commands are checked"
    )


class DeviceWatchSettings(_Section):
    """When a silent device becomes a device-offline incident; when a seq gap is loss."""

    heartbeat_budget_s: float = Field(
        180, gt=0, description="An armed device with no heartbeat this long is offline"
    )
    offline_grace_s: float = Field(
        60, ge=0, description="A device whose status (Last Will) says offline this long is offline"
    )
    gap_grace_s: float = Field(
        300, ge=0, description="A seq gap still open after this long is reported as data loss"
    )
    poll_interval_s: float = Field(5.0, gt=0, description="How often devices are checked")


class StormSettings(_Section):
    """Alert storms: many devices of one building or grid offline at once become one incident."""

    enabled: bool = Field(True, description="Group offline incidents (off: one per device)")
    window_s: float = Field(
        300, gt=0, description="Device-offline incidents of one building (else grid) opened "
        "within this window are counted together")
    threshold: int = Field(
        5, ge=2, description="This many devices of one building or grid offline within the "
        "window become one grouped incident with one notification")
    hold_s: float = Field(
        60, ge=0, description="A device-offline alert waits this long before it is sent, so "
        "a storm forming meanwhile replaces the single alerts with its one (devices' Last "
        "Wills after a power cut arrive spread over about 1.5 keepalive intervals)")


class RetentionSettings(_Section):
    """Purging personal data after a quarantine ended."""

    days: int = Field(
        90, ge=0, description="Days after a quarantine's end when the household's personal data "
        "and snapshots are purged"
    )
    interval_s: float = Field(3600, gt=0, description="How often the purge job runs")
    rejected_days: int = Field(
        30, ge=0, description="Days rejected messages are kept before the purge job deletes them"
    )


class FollowUpSettings(_Section):
    """Daily follow-ups: the fever threshold, who hears of a fever, the daily reminder."""

    fever_c: float = Field(
        37.3, ge=36.0, le=42.0,
        description="A member's temperature at or above this (°C) opens a fever incident")
    health_worker_id: int | None = Field(
        None, description="The health station's worker (a worker id) who is notified of "
        "fevers; when unset, the household's grid worker is")
    remind_at: str | None = Field(
        "16:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time (notify.timezone) at which each worker is reminded of the "
        "households in quarantine not yet visited today; unset: no reminder")
    poll_interval_s: float = Field(
        30.0, gt=0, description="How often the reminder job checks whether it is due")


class ReportSettings(_Section):
    """Grid reports to supervisors (server/jobs/grid_report.py)."""

    daily_at: str | None = Field(
        "08:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time (notify.timezone) at which each grid's supervisor gets the "
        "report of the previous day (PDF attached); unset: no reports are sent")
    weekly_weekday: int | None = Field(
        0, ge=0, le=6, description="Weekday (0 = Monday) on which, at daily_at, the weekly "
        "summary of the seven days before goes out too; unset: no weekly summary")
    poll_interval_s: float = Field(
        30.0, gt=0, description="How often the report job checks whether it is due")


class CheckinSettings(_Section):
    """Presence check-ins (server/jobs/checkin_watch.py)."""

    window_s: float = Field(300.0, ge=5.0, le=3600.0, description="How long a person has to "
                            "come to the door after the chime")
    answer_grace_s: float = Field(
        120.0, ge=0, description="After the window, how long the device's outcome may take to "
        "arrive before the check-in counts as unanswered (a missed check-in)")
    times: list[str] = Field(
        default_factory=list, description="Local times (HH:MM, notify.timezone) at which every "
        "armed household with a device is checked in; empty: only workers ask")
    poll_interval_s: float = Field(5.0, gt=0, description="How often check-ins are looked at")


class VisitSettings(_Section):
    """Registered visits: how long a registered visitor may stay inside."""

    stay_limit_min: int = Field(
        30, ge=1, le=24 * 60, description="Minutes a registered visitor may stay inside before "
        "an overstay incident opens (a registration may set its own)")
    poll_interval_s: float = Field(10.0, gt=0, description="How often overstays are checked")


class ShareSettings(_Section):
    """Machine access with API tokens (the health office)."""

    requests_per_minute: int = Field(
        60, ge=1, le=10_000, description="Requests one API token may make per minute")


class NotifySettings(_Section):
    """Delivery of notifications through Apprise."""

    retry_delays_s: list[float] = Field(
        default_factory=lambda: [2.0, 10.0, 30.0, 120.0, 600.0],
        description="Delay before each retry; after the last, the notification is marked failed",
    )
    poll_interval_s: float = Field(0.5, gt=0, description="How often due notifications are checked")
    claim_s: float = Field(120, gt=0, description="How long an instance owns a delivery attempt")
    dashboard_url: str = Field(
        "http://127.0.0.1:8080", description="Base URL of the dashboard, for links in messages"
    )
    timezone: str = Field("Asia/Shanghai", description="Time zone for times shown in messages")
    evidence_max_bytes: int = Field(
        150_000, ge=10_000, description="The snapshot attached to an alert is re-encoded "
        "(then scaled down) until it is at most this many bytes")
    evidence_max_side: int = Field(
        960, ge=64, description="The attached snapshot is at most this many pixels wide and high")
    evidence_wait_s: float = Field(
        1.5, ge=0, description="An alert whose event announced a snapshot not yet received "
        "waits at most this long for it (the device sends it right after the event)")
    ack_link_lifetime_s: float = Field(
        12 * 3600, gt=0, le=7 * 86400,
        description="How long the one-tap acknowledge link in an alert stays valid (single use)",
    )


class HttpSettings(_Section):
    """The HTTP API and dashboard."""

    enabled: bool = Field(False, description="Serve the HTTP API and dashboard")
    host: str = Field("127.0.0.1", description="Listen address")
    port: int = Field(8080, ge=0, le=65535, description="Listen port (0: any free port)")
    cookie_secure: bool = Field(
        True, description="Send the session cookie over HTTPS only; turn off only when the "
        "dashboard is served over plain HTTP (browsers allow it on localhost either way)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose X-Forwarded-For "
        "names the client; login throttling counts per source address, so list only your "
        "own proxies (anyone else could pick any source by sending the header)"
    )


class ServerSettings(BaseSettings):
    """Root configuration of ``doorwatch server run``."""

    model_config = SettingsConfigDict(
        env_prefix="DOORWATCH_SERVER__", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = Field(
        "sqlite:///data/doorwatch.db", description="sqlite:///PATH or postgresql://..."
    )
    data_dir: Path = Field(Path("data"), description="Folder for server state")
    instance: str = Field(
        default_factory=socket.gethostname, description="Name of this server instance"
    )
    broker: Literal["mosquitto", "rabbitmq"] = Field(
        "mosquitto", description="mosquitto: MQTT to one broker ([mqtt]); rabbitmq: the "
        "replicated ingest queue of a RabbitMQ cluster over AMQP ([amqp])")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    devices: DeviceWatchSettings = Field(default_factory=DeviceWatchSettings)
    storm: StormSettings = Field(default_factory=StormSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    followups: FollowUpSettings = Field(default_factory=FollowUpSettings)
    visits: VisitSettings = Field(default_factory=VisitSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    checkins: CheckinSettings = Field(default_factory=CheckinSettings)
    share: ShareSettings = Field(default_factory=ShareSettings)


def load_server_settings(path: Path | None = None, **overrides: Any) -> ServerSettings:
    """Load settings from a TOML file (if given), the environment and ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("file not found", path=path) from None
        except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not UTF-8
            raise ConfigError(f"cannot read: {exc}", path=path) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    data.update(overrides)
    try:
        return ServerSettings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=path, field=field) from None

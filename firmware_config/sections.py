"""Sections of the device configuration, one model per concern.

Every model forbids unknown keys (a typo is an error at start, naming the
field) and documents every field; ``doorwatch agent config-schema`` exports
the whole tree as JSON Schema for editors and the provisioning tools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from firmware_config.scene import Scene

__all__ = [
    "CameraSettings",
    "ChimeSettings",
    "CommissionSettings",
    "DoorSettings",
    "EvidenceSettings",
    "MqttLinkSettings",
    "OutboxSettings",
    "TamperSettings",
]

CameraBackend = Literal["picamera2", "opencv", "synthetic", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttLinkSettings(_Section):
    """How the device reaches the broker."""

    host: str = Field("127.0.0.1", description="Broker address (name or IP)")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS)")
    password: SecretStr | None = Field(
        None,
        description="Device password (the username is the device id). Prefer the environment "
        "variable DOORWATCH_AGENT__MQTT__PASSWORD over writing it into the file",
    )
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="MQTT keepalive; the Last Will fires after about 1.5x"
    )
    tls: bool = Field(False, description="Connect with TLS")
    ca_file: Path | None = Field(
        None, description="CA certificate that signed the broker's certificate (TLS)"
    )
    credentials_file: Path | None = Field(
        None,
        description="Owner-only file with the device's broker password, written by "
        "`doorwatch agent install-bundle` and updated by credential rotation; it takes "
        "precedence over `password` (see agent/credentials.py)",
    )
    brokers: list[str] = Field(
        default_factory=list,
        description="Further nodes of a clustered broker, as host or host:port (port defaults "
        "to `port`). When the node in use cannot be reached or drops the connection, the "
        "device moves to the next one; its events wait in the outbox meanwhile, and the "
        "server ignores a record it already has, so nothing is lost or doubled",
    )

    @model_validator(mode="after")
    def _check_brokers(self) -> Self:
        self.addresses()  # raises ValueError (a validation error naming the field)
        return self

    def addresses(self) -> list[tuple[str, int]]:
        """Every broker node to try, in order: ``host:port`` first, then ``brokers``."""
        out = [(self.host, self.port)]
        for entry in self.brokers:
            host, sep, port = entry.rpartition(":")
            if not sep:
                host, port = entry, str(self.port)
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"brokers: {entry!r} is not host or host:port")
            out.append((host, int(port)))
        return out


class ChimeSettings(_Section):
    """The buzzer a presence check-in sounds (agent/checkin.py)."""

    fitted: bool = Field(False, description="Whether a buzzer is wired (else a check-in "
                         "runs silently and says so in its acknowledgement)")
    gpio_pin: int = Field(18, ge=0, le=27, description="BCM pin of the (active) buzzer")
    beeps: int = Field(3, ge=1, le=10, description="Beeps per chime")
    beep_s: float = Field(0.25, gt=0, le=2, description="Length of one beep and of the pause")


class DoorSettings(_Section):
    """The reed switch on the door frame and how door episodes are cut."""

    fitted: bool = Field(
        True,
        description="Whether a reed switch is fitted; without one, episodes start when the "
        "camera sees movement in the doorway",
    )
    gpio_pin: int = Field(
        17, ge=0, le=27, description="BCM pin the reed switch is wired to (other side to GND)"
    )
    pull_up: bool = Field(True, description="Use the internal pull-up (switch closes to ground)")
    bounce_s: float = Field(0.05, ge=0, le=1, description="Debounce time of the switch, seconds")
    quiet_s: float = Field(
        5.0, ge=0, le=600,
        description="The door must stay closed this long (seconds) for an episode to end",
    )
    max_open_s: float = Field(
        60.0, gt=0, le=3600,
        description="A door held open longer than this is reported in parts: an episode is cut "
        "(and classified) every max_open_s, so a person leaving through an open door is "
        "reported without waiting for the door to close",
    )
    stuck_open_s: float = Field(
        900.0, gt=0,
        description="A door reading open this long without a break is reported as a possibly "
        "disconnected door sensor (a cut wire reads as open)",
    )


class CameraSettings(_Section):
    """The camera and the doorway it watches."""

    backend: CameraBackend = Field(
        "none",
        description="Camera backend: picamera2 (Pi camera), opencv (USB camera, RTSP/HTTP URL "
        "or video file), synthetic (simulation) or none (door sensor only: every episode is "
        "door_open_unverified; the default, so a missing [camera] section is loud, not silent)",
    )
    source: str = Field(
        "0", description="opencv only: camera index, RTSP/HTTP URL or video file path"
    )
    width: int = Field(320, ge=64, le=1920, description="Analysis (lores) frame width, pixels")
    height: int = Field(240, ge=48, le=1080, description="Analysis (lores) frame height, pixels")
    main_width: int = Field(
        1280, ge=64, le=4056, description="picamera2: evidence (main stream) width, pixels"
    )
    main_height: int = Field(
        720, ge=48, le=3040, description="picamera2: evidence (main stream) height, pixels"
    )
    fps: float = Field(25.0, gt=0, le=120, description="Frames per second to capture and analyse")
    min_fps_fraction: float = Field(
        0.7, gt=0, le=1,
        description="Commissioning and health treat the camera as failing below this share of "
        "the configured fps",
    )
    scene: Scene | None = Field(
        None,
        description="The doorway: threshold line and inside point, normalized 0..1. Leave it "
        "out: after `agent commission` the line is drawn on the aim picture in the dashboard "
        "(the device's page) and reaches the device as a configuration update. Until then "
        "every door opening is reported as unverified. The synthetic camera brings its own",
    )
    analysis_wait_s: float = Field(
        3.0, ge=0, le=60,
        description="At the end of an episode, wait at most this long for the analyzer to "
        "catch up before judging (a slower analyzer makes the episode unverified)",
    )
    min_passage_confidence: float = Field(
        0.5, ge=0, le=1, description="Passages below this confidence do not decide the kind"
    )
    early_exit: bool = Field(
        True, description="Report an exit as soon as a confident out-passage is seen, while "
        "the door may still be open; the episode's verdict follows when it ends"
    )
    reentry_window_s: float = Field(
        10.0, ge=0, le=600,
        description="An early exit followed by a confident in-passage within this many "
        "seconds is withdrawn as a re-entry (the person stepped out and came straight back)",
    )
    synthetic_seed: int = Field(1, description="synthetic only: seed of the rendered corridor")



class EvidenceSettings(_Section):
    """Snapshots taken as evidence for exits, entries and unverified openings."""

    enabled: bool = Field(True, description="Take and publish evidence snapshots")
    pre_event_s: float = Field(
        3.0, ge=0, le=30, description="Seconds of frames kept in memory before a door opens"
    )
    frames_per_event: int = Field(
        2, ge=1, le=8, description="Best frames published (and kept) per event"
    )
    jpeg_quality: int = Field(80, ge=20, le=100, description="JPEG quality, 20..100")
    disk_budget_mb: float = Field(
        200.0, gt=0, description="Evidence folder size limit; the oldest files go first"
    )
    keep_days: float = Field(
        14.0, gt=0, description="Evidence older than this is deleted from the device"
    )


class OutboxSettings(_Section):
    """The durable queue of records waiting for the broker."""

    disk_budget_mb: float = Field(
        50.0, gt=0,
        description="Outbox size limit; heartbeats go first, then snapshots; events are never "
        "dropped (a health alarm is raised when only events are left)",
    )
    memory_backlog: int = Field(
        1000, ge=10,
        description="Events kept in memory while the outbox cannot be written (full disk, "
        "read-only file system), retried until they are on disk",
    )
    offline_heartbeats: int = Field(
        20, ge=0, le=10000,
        description="Heartbeats kept while the broker is away (older ones are dropped)",
    )


class TamperSettings(_Section):
    """Checks that the device is working and not interfered with."""

    camera: bool = Field(True, description="Report camera covered / blinded / moved / frozen")
    clock_jump_s: float = Field(
        60.0, gt=0, description="A wall-clock step larger than this is reported as clock_jump"
    )


class CommissionSettings(_Section):
    """``doorwatch agent commission``: limits of the installer's checklist."""

    door_timeout_s: float = Field(
        60.0, gt=0, description="How long to wait for the installer to open / close the door"
    )
    server_timeout_s: float = Field(
        20.0, gt=0, description="How long to wait for the server to confirm the test event"
    )
    camera_seconds: float = Field(
        3.0, gt=0, le=60, description="How long to measure the camera's frame rate"
    )
    max_clock_offset_s: float = Field(
        2.0, gt=0, description="Largest acceptable difference from the server's clock"
    )

"""The device configuration: one strict root model, read from TOML with environment overrides.

Environment variables override the file (``DOORWATCH_AGENT__MQTT__PASSWORD``),
which is how secrets reach a device without being written into the file.
A typo or an unknown key is an error at start that names the file and field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.topics import DEVICE_ID_PATTERN
from doorwatch.errors import ConfigError

__all__ = ["DeviceConfig", "DoorSettings", "MqttLinkSettings", "load_device_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttLinkSettings(_Section):
    """How the device reaches the broker."""

    host: str = Field("127.0.0.1", description="Broker address")
    port: int = Field(1883, ge=1, le=65535, description="Broker port")
    password: SecretStr | None = Field(None, description="Device password (username = device id)")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; Last Will fires after ~1.5x")
    tls: bool = Field(False, description="Connect with TLS")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate")


class DoorSettings(_Section):
    """The reed switch on the door frame."""

    gpio_pin: int = Field(17, ge=0, le=40, description="BCM pin the reed switch is wired to (to GND)")
    pull_up: bool = Field(True, description="Use the internal pull-up (switch closes to ground)")
    bounce_s: float = Field(0.05, ge=0, le=1, description="Debounce time")
    quiet_s: float = Field(
        5.0, ge=0, description="Door must stay closed this long for the episode to end"
    )


class DeviceConfig(BaseSettings):
    """Root configuration of ``doorwatch agent run``."""

    model_config = SettingsConfigDict(
        env_prefix="DOORWATCH_AGENT__", env_nested_delimiter="__", extra="forbid"
    )

    device_id: str = Field(pattern=DEVICE_ID_PATTERN, description="Device id = MQTT username")
    data_dir: Path = Field(Path("/var/lib/doorwatch"), description="Outbox, seq and evidence")
    firmware_version: str = Field("0.1.0", description="Reported in heartbeats")
    heartbeat_interval_s: float = Field(30.0, gt=0, description="Seconds between heartbeats")
    armed_default: bool = Field(True, description="Armed state before the server says otherwise")
    mqtt: MqttLinkSettings = Field(default_factory=MqttLinkSettings)  # type: ignore[arg-type]
    door: DoorSettings = Field(default_factory=DoorSettings)  # type: ignore[arg-type]
    pin_factory: Literal["native", "lgpio", "mock"] = Field(
        "lgpio", description="gpiozero pin backend; 'mock' simulates the door"
    )


def load_device_config(path: Path | None = None, **overrides: Any) -> DeviceConfig:
    """Load the device configuration from ``path`` (TOML), the environment and ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("file not found", path=path) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    data.update(overrides)
    try:
        return DeviceConfig(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=path, field=field) from None

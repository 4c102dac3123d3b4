"""The device configuration: one strict root model, read from TOML with environment overrides.

Sources, strongest first:

1. environment variables ``DOORWATCH_AGENT__<FIELD>`` with ``__`` between
   levels (``DOORWATCH_AGENT__MQTT__PASSWORD``), which is how secrets reach a
   device without being written into the file;
2. explicit overrides of the caller (``--simulate`` forces the mock door);
3. remote configuration updates accepted from the server, kept in
   ``<data_dir>/config-override.json`` (``/etc`` is read-only for the service);
4. the TOML file (``/etc/doorwatch/agent.toml`` on a Pi);
5. the defaults documented on every field.

A typo or an unknown key is an error at start that names the file and field.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from broker.topics import DEVICE_ID_PATTERN
from firmware_config.sections import (
    CameraSettings,
    ChimeSettings,
    CommissionSettings,
    DoorSettings,
    EvidenceSettings,
    MqttLinkSettings,
    OutboxSettings,
    TamperSettings,
)
from ground.errors import ConfigError

__all__ = [
    "OVERRIDE_FILE",
    "CameraSettings",
    "ChimeSettings",
    "CommissionSettings",
    "DeviceConfig",
    "DoorSettings",
    "EvidenceSettings",
    "MqttLinkSettings",
    "OutboxSettings",
    "TamperSettings",
    "deep_merge",
    "device_config_schema",
    "load_device_config",
    "read_toml",
    "validation_message",
]

OVERRIDE_FILE = "config-override.json"


class DeviceConfig(BaseSettings):
    """Root configuration of ``doorwatch agent run`` and ``doorwatch agent commission``."""

    model_config = SettingsConfigDict(
        env_prefix="DOORWATCH_AGENT__", env_nested_delimiter="__", extra="forbid"
    )

    device_id: str = Field(
        pattern=DEVICE_ID_PATTERN, description="Device id = MQTT username = client id"
    )
    data_dir: Path = Field(
        Path("/var/lib/doorwatch"),
        description="Writable folder for the outbox, device state, open episode and evidence",
    )
    firmware_version: str = Field("0.1.0", description="Reported in heartbeats")
    heartbeat_interval_s: float = Field(
        30.0, gt=0, le=3600, description="Seconds between heartbeats"
    )
    armed_default: bool = Field(
        True, description="Armed state before the server has said anything (fail safe: armed)"
    )
    language: Literal["zh_CN", "en"] = Field(
        "zh_CN", description="Language of the installer's commissioning checklist"
    )
    pin_factory: Literal["native", "lgpio", "mock"] = Field(
        "lgpio", description="gpiozero pin backend: lgpio on a Pi; 'mock' simulates the door"
    )
    mqtt: MqttLinkSettings = Field(
        default_factory=MqttLinkSettings,
        description="Broker connection",
    )
    door: DoorSettings = Field(
        default_factory=DoorSettings,
        description="Reed switch and episodes",
    )
    camera: CameraSettings = Field(
        default_factory=CameraSettings,
        description="Camera and doorway scene",
    )
    chime: ChimeSettings = Field(
        default_factory=ChimeSettings,
        description="Buzzer sounded by a presence check-in",
    )
    evidence: EvidenceSettings = Field(
        default_factory=EvidenceSettings,
        description="Evidence snapshots",
    )
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings,
        description="Durable outbox limits",
    )
    tamper: TamperSettings = Field(
        default_factory=TamperSettings,
        description="Tamper checks",
    )
    commission: CommissionSettings = Field(
        default_factory=CommissionSettings,
        description="Installer checklist limits",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then what the loader passes (file + remote updates)."""
        return env_settings, init_settings


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, tables merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; errors name the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None


def _read_override(data_dir: Path) -> dict[str, Any]:
    path = data_dir / OVERRIDE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"remote configuration unreadable: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("remote configuration is not a JSON object", path=path)
    return data


def validation_message(exc: ValidationError) -> tuple[str, str]:
    """``(field path, message)`` of the first problem."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    return field, first["msg"]


def load_device_config(
    path: Path | None = None, *, use_override: bool = True, **overrides: Any
) -> DeviceConfig:
    """Load the device configuration (see the module docstring for the order of sources)."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    try:
        config = DeviceConfig(**deep_merge(data, overrides))
    except ValidationError as exc:
        field, message = validation_message(exc)
        raise ConfigError(message, path=path, field=field) from None
    if not use_override:
        return config
    remote = _read_override(config.data_dir)
    if not remote:
        return config
    try:
        return DeviceConfig(**deep_merge(deep_merge(data, remote), overrides))
    except ValidationError as exc:
        # The file alone was valid: what is wrong came with the remote update.
        field, message = validation_message(exc)
        raise ConfigError(message, path=config.data_dir / OVERRIDE_FILE, field=field) from None


def device_config_schema() -> dict[str, Any]:
    """JSON Schema of the device configuration file."""
    return DeviceConfig.model_json_schema()

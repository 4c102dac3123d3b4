"""Remote configuration updates: what may change, validation, atomic persistence.

A ``config_update`` command carries a partial configuration (nested tables as
JSON objects). It is applied all or nothing: every key must be one the server
may change, and the merged configuration must validate as a whole; otherwise
the device answers with ``ok=false`` and a reason naming the field. Accepted
updates are written atomically to ``<data_dir>/config-override.json`` (the
service's only writable place; ``/etc`` is read-only under ProtectSystem) so
they survive a restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firmware_config.device_config import (
    OVERRIDE_FILE,
    DeviceConfig,
    deep_merge,
    validation_message,
)
from ground.errors import ConfigError

__all__ = ["REMOTE_FIELDS", "apply_config_update", "check_remote_keys"]

# section -> fields the server may change (None: every field of the section).
REMOTE_FIELDS: dict[str, frozenset[str] | None] = {
    "heartbeat_interval_s": frozenset(),
    "door": frozenset({"quiet_s", "max_open_s", "stuck_open_s"}),
    "camera": frozenset({"scene", "min_passage_confidence", "analysis_wait_s", "early_exit",
                         "reentry_window_s"}),
    "evidence": None,
    "outbox": frozenset({"disk_budget_mb", "offline_heartbeats"}),
    "tamper": frozenset({"clock_jump_s"}),
}


def check_remote_keys(update: dict[str, Any]) -> None:
    """Raise ConfigError naming the first key the server may not change."""
    if not update:
        raise ConfigError("empty configuration update")
    for key, value in update.items():
        allowed = REMOTE_FIELDS.get(key, frozenset({"-"}))
        if key not in REMOTE_FIELDS:
            raise ConfigError("cannot be changed remotely (ask the installer)", field=key)
        if allowed == frozenset():
            continue
        if not isinstance(value, dict):
            raise ConfigError("expected a table of settings", field=key)
        for sub in value:
            if allowed is not None and sub not in allowed:
                raise ConfigError("cannot be changed remotely (ask the installer)",
                                  field=f"{key}.{sub}")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def apply_config_update(current: DeviceConfig, update: dict[str, Any]) -> DeviceConfig:
    """Validate ``update`` against ``current`` and persist it; return the new configuration.

    Raises ConfigError (with the field) when the update is refused; nothing
    is written in that case.
    """
    check_remote_keys(update)
    base = current.model_dump(mode="python")
    if current.mqtt.password is not None:
        base["mqtt"]["password"] = current.mqtt.password
    try:
        new = DeviceConfig.model_validate(deep_merge(base, update))
    except ValidationError as exc:
        field, message = validation_message(exc)
        raise ConfigError(message, field=field) from None
    path = current.data_dir / OVERRIDE_FILE
    try:
        merged = deep_merge(_read(path), json.loads(json.dumps(update)))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot store the update: {exc}", path=path) from None
    return new

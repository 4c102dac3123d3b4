"""Which device configuration file a device command reads, and errors that say where it looked.

One name everywhere: ``agent.toml`` in ``/etc/doorwatch`` (what ``agent
install-bundle`` writes, what the systemd unit and the install guide name).
``DOORWATCH_AGENT_CONFIG`` points elsewhere (a test, a second agent on one
machine); ``-c FILE`` beats both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from firmware_config.device_config import DeviceConfig, load_device_config
from ground.errors import ConfigError
from ground.i18n import t

__all__ = ["CONFIG_DIR", "CONFIG_ENV", "CONFIG_NAME", "default_config_path", "load_agent_config"]

CONFIG_DIR = Path("/etc/doorwatch")
CONFIG_NAME = "agent.toml"
CONFIG_ENV = "DOORWATCH_AGENT_CONFIG"


def default_config_path() -> Path:
    """``$DOORWATCH_AGENT_CONFIG``, else ``/etc/doorwatch/agent.toml``."""
    return Path(os.environ.get(CONFIG_ENV) or CONFIG_DIR / CONFIG_NAME)


def _has_env_config() -> bool:
    return any(key.startswith("DOORWATCH_AGENT__DEVICE_ID") for key in os.environ)


def load_agent_config(path: Path | None, messages: str | None = None,
                      **overrides: Any) -> DeviceConfig:
    """Load the device configuration for a command given ``-c path`` (or not).

    Without ``path`` the default file is read when it exists; when it does not
    and the environment does not name the device either, the error says which
    file was looked for and how to get one, instead of a bare missing field.
    """
    if path is not None:
        if not path.exists():
            raise ConfigError(t("agent.config_missing", messages, path=path), path=path)
        return load_device_config(path, **overrides)
    default = default_config_path()
    if default.exists():
        return load_device_config(default, **overrides)
    if not _has_env_config():
        raise ConfigError(t("agent.config_not_found", messages, path=default, env=CONFIG_ENV))
    return load_device_config(None, **overrides)

"""Building blocks for end-to-end tests: settings, seeded households, polling."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from server.admin import add_household, add_worker, register_device
from server.config import ServerSettings, load_server_settings
from server.db.base import Database
from tests.conftest import Mosquitto


def server_settings(tmp_path: Path, broker: Mosquitto, **overrides: object) -> ServerSettings:
    """Settings for a server on ``broker`` with a database in ``tmp_path``."""
    base: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "data_dir": str(tmp_path / "server-data"),
        "instance": "test",
        "mqtt": {"host": "127.0.0.1", "port": broker.port,
                 "password": broker.broker.server_password, "client_id": "doorwatch-server-test"},
        "notify": {"retry_delays_s": [0.2, 0.5, 1.0], "poll_interval_s": 0.05},
    }
    base.update(overrides)
    return load_server_settings(None, **base)


def secret(value: str) -> SecretStr:
    """Wrap a password."""
    return SecretStr(value)


async def seed_household(db: Database, device_id: str, apprise_url: str, *, armed: bool = True,
                         language: str = "zh_CN") -> int:
    """One worker, one household, one device; return the household id."""
    worker = await add_worker(db, "王网格", apprise_urls=[apprise_url], language=language)
    household = await add_household(
        db, "张三家", "幸福路 8 号 3-502", worker_id=worker, armed=armed
    )
    await register_device(db, device_id, household_id=household)
    return household



async def count(db: Database, sql: str, params: tuple[object, ...] = ()) -> int:
    """First column of the first row, as an int."""
    row = await db.fetch_one(sql, params)
    return int(next(iter(row.values()))) if row else 0


def tls_agent_config(tmp_path: Path, broker: Mosquitto, device_id: str) -> Path:
    """Write an agent.toml for ``device_id`` reaching ``broker`` over TLS, with a short door
    quiet time so episodes end within a test's patience."""
    path = tmp_path / "agent.toml"
    path.write_text(f"""
device_id = "{device_id}"
data_dir = "{tmp_path / 'agent-data'}"
heartbeat_interval_s = 5
[mqtt]
host = "localhost"
port = {broker.tls_port}
tls = true
ca_file = "{broker.broker.ca_cert_file}"
[door]
quiet_s = 1.0
bounce_s = 0.0
""", encoding="utf-8")
    return path

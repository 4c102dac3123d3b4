"""Two server instances share the subscription and one PostgreSQL; one is SIGKILLed mid-stream."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
import tomli_w

from server.db.connect import open_database
from tests.conftest import Mosquitto, doorwatch_process, wait_for_log
from tests.faults.conftest import provision_fleet
from tests.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.faults, pytest.mark.slow]

DEVICES = 5
PER_DEVICE = 400


def _config(tmp_path: Path, broker: Mosquitto, db_url: str, name: str) -> Path:
    # Each instance has a broker account (and so a session) of its own.
    username, password = broker.broker.add_server(name)
    broker.reload()
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps({
        "database_url": db_url, "data_dir": str(tmp_path / name), "instance": name,
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "username": username,
                 "password": password, "shared_group": "doorwatch-servers"},
    }))
    return path


def _start(tmp_path: Path, config: Path, name: str) -> subprocess.Popen[bytes]:
    log = tmp_path / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    process = doorwatch_process("server", "run", "-c", str(config), log=log)
    assert wait_for_log(log, '"msg": "subscribed"', after=offset), log.read_text()
    return process


def _counts(db_url: str) -> tuple[int, int, int]:
    async def query() -> tuple[int, int, int]:
        db = await open_database(db_url)
        try:
            row = await db.fetch_one(
                "SELECT COUNT(*) AS n, COUNT(DISTINCT device_id || ':' || seq) AS d, "
                "(SELECT COUNT(*) FROM seq_gaps) AS g FROM events")
        finally:
            await db.close()
        assert row is not None
        return int(row["n"]), int(row["d"]), int(row["g"])

    return asyncio.run(query())


def _explain(db_url: str) -> str:
    async def query() -> str:
        db = await open_database(db_url)
        try:
            gaps = await db.fetch_all("SELECT device_id, first_seq, last_seq FROM seq_gaps")
            rejected = await db.fetch_all("SELECT reason, COUNT(*) AS n FROM rejected_messages "
                                          "GROUP BY reason")
        finally:
            await db.close()
        return f"gaps={gaps} rejected={rejected}"

    return asyncio.run(query())


def _wait(db_url: str, at_least: int, timeout: float = 90) -> int:
    """Wait until ``at_least`` events are stored; return how many are."""
    wait_until(lambda: _counts(db_url)[0] >= at_least, f"{at_least} events stored", timeout,
               every=0.3, detail=lambda: f"{_counts(db_url)}; {_explain(db_url)}")
    return _counts(db_url)[0]


def test_one_instance_killed_the_other_carries_on_exactly_once(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> None:
    creds = provision_fleet(mosquitto, postgres_url, DEVICES, tmp_path)
    configs = {name: _config(tmp_path, mosquitto, postgres_url, name) for name in ("a", "b")}
    servers = {name: _start(tmp_path, config, name) for name, config in configs.items()}
    total = DEVICES * PER_DEVICE
    sim = doorwatch_process(
        "sim", "--credentials", str(creds), *mosquitto.device_args(),
        "--data-dir", str(tmp_path / "sim"), "--events", str(PER_DEVICE), "--rate", "300",
        "--drain-timeout", "90", log=tmp_path / "sim.log")
    try:
        assert _wait(postgres_url, total // 4) < total
        servers["a"].kill()
        servers["a"].wait()
        at_kill = _counts(postgres_url)[0]
        # While "a" is dead, "b" alone keeps storing what the broker gives it.
        assert _wait(postgres_url, at_kill + 200, timeout=30) >= at_kill + 200
        servers["a"] = _start(tmp_path, configs["a"], "a")
        assert sim.wait(timeout=120) == 0, (tmp_path / "sim.log").read_text()
        _wait(postgres_url, total)
    finally:
        for process in servers.values():
            process.send_signal(signal.SIGTERM)
        for process in servers.values():
            process.wait(timeout=30)
        sim.kill()
    stored, distinct, gaps = _counts(postgres_url)
    assert (stored, distinct, gaps) == (total, total, 0), _explain(postgres_url)
    for name in ("a", "b"):
        assert '"msg": "server stopped"' in (tmp_path / f"{name}.log").read_text()

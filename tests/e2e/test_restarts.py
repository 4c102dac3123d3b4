"""Nothing is lost, nothing is doubled: real processes, real broker restarts and SIGKILLs."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import tomli_w

from server.db.connect import open_database
from tests.conftest import Mosquitto, doorwatch_process, wait_for_log
from tests.e2e.helpers import seed_household
from tests.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

EVENTS = 500


def _server_config(tmp_path: Path, broker: Mosquitto) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(tomli_w.dumps({
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "data_dir": str(tmp_path / "server-data"),
        "instance": "restart-test",
        "mqtt": {"host": "127.0.0.1", "port": broker.port,
                 "password": broker.broker.server_password,
                 "client_id": "doorwatch-server-restart-test"},
    }))
    return path


def _prepare(tmp_path: Path, broker: Mosquitto, device_id: str) -> Path:
    password = broker.add_device(device_id)

    async def seed() -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'server.db'}")
        await seed_household(db, device_id, "json://127.0.0.1:9/unused", armed=False)
        await db.close()

    asyncio.run(seed())
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({device_id: password}))
    return creds


def _start_server(tmp_path: Path, config: Path) -> subprocess.Popen[bytes]:
    """Start the server and wait until the broker queues device messages for it."""
    log = tmp_path / "server.log"
    offset = log.stat().st_size if log.exists() else 0
    server = doorwatch_process("server", "run", "-c", str(config), log=log)
    assert wait_for_log(log, '"msg": "subscribed"', after=offset), log.read_text()
    return server


def _start_sim(tmp_path: Path, broker: Mosquitto, creds: Path) -> subprocess.Popen[bytes]:
    return doorwatch_process(
        "sim", "--credentials", str(creds), *broker.device_args(),
        "--data-dir", str(tmp_path / "sim"), "--events", str(EVENTS), "--rate", "100",
        "--drain-timeout", "60", log=tmp_path / "sim.log")


def _stored(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "server.db") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT device_id, seq FROM events")]


def _wait_stored(tmp_path: Path, count: int, timeout: float = 60) -> None:
    wait_until(lambda: len(_stored(tmp_path)) >= count, f"{count} events stored", timeout,
               every=0.2, detail=lambda: f"{len(_stored(tmp_path))} stored")


def _gaps(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "server.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM seq_gaps").fetchone()[0])


def _assert_exactly_once(tmp_path: Path, device_id: str) -> None:
    rows = _stored(tmp_path)
    assert len(rows) == EVENTS, f"{len(rows)} events stored, expected {EVENTS}"
    assert sorted(seq for _, seq in rows) == list(range(1, EVENTS + 1))
    assert {d for d, _ in rows} == {device_id}
    assert _gaps(tmp_path) == 0


def test_broker_restart_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    creds = _prepare(tmp_path, mosquitto, "door-201")
    server = _start_server(tmp_path, _server_config(tmp_path, mosquitto))
    sim = _start_sim(tmp_path, mosquitto, creds)
    try:
        _wait_stored(tmp_path, 150)
        assert 0 < len(_stored(tmp_path)) < EVENTS, "restart must happen mid-stream"
        offset = (tmp_path / "server.log").stat().st_size
        mosquitto.restart()
        # The second restart hits the server's new connection, not its reconnect attempt.
        assert wait_for_log(tmp_path / "server.log", '"msg": "subscribed"', after=offset)
        mosquitto.restart()
        assert sim.wait(timeout=120) == 0, (tmp_path / "sim.log").read_text()
        _wait_stored(tmp_path, EVENTS)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        sim.kill()
    _assert_exactly_once(tmp_path, "door-201")


def test_server_sigkill_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    creds = _prepare(tmp_path, mosquitto, "door-202")
    config = _server_config(tmp_path, mosquitto)
    server = _start_server(tmp_path, config)
    sim = _start_sim(tmp_path, mosquitto, creds)
    try:
        _wait_stored(tmp_path, 100)
        server.kill()  # SIGKILL: no chance to flush or acknowledge anything
        server.wait()
        killed_at = len(_stored(tmp_path))
        assert killed_at < EVENTS, "the kill must happen mid-stream"
        # A window, not a wait: the agent keeps publishing into the server's queued session.
        time.sleep(1.5)
        server = doorwatch_process("server", "run", "-c", str(config),
                                   log=tmp_path / "server.log")
        _wait_stored(tmp_path, 300)
        server.kill()
        server.wait()
        server = doorwatch_process("server", "run", "-c", str(config),
                                   log=tmp_path / "server.log")
        assert sim.wait(timeout=120) == 0, (tmp_path / "sim.log").read_text()
        _wait_stored(tmp_path, EVENTS)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        sim.kill()
    _assert_exactly_once(tmp_path, "door-202")

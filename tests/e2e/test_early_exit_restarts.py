"""Early exit across real process deaths: one alert per exit, the verdict updates it.

Real Mosquitto, a real server process, a real agent process (synthetic camera,
real analyzer, mock door) and a real HTTP receiver. The agent is SIGKILLed
right after its early exit (the door still open), the server right after the
alert reached the phone; the agent comes back, finishes the episode and sends
its verdict while the server is down; the server comes back and applies it.
Exactly one alert reaches the worker, and the incident carries the verdict.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from server.db.connect import open_database
from tests.conftest import Mosquitto, Receiver, doorwatch_process, wait_for_log
from tests.e2e.helpers import seed_household, tls_agent_config
from tests.e2e.test_restarts import _server_config, _start_server
from tests.waiting import wait_until

# Folding would hide a second breach inside the first incident: off, so it would show.
_NO_FOLDING = '\n[rules]\nfold_window_s = 0.0\n'

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICE = "door-early"


def _start_agent(config: Path, log: Path, password: str, *,
                 mean_interval: float) -> subprocess.Popen[bytes]:
    return doorwatch_process(
        "agent", "run", "--simulate", "-c", str(config), "--seed", "5",
        "--mean-interval", str(mean_interval), "--exit-probability", "1",
        log=log, env={"DOORWATCH_AGENT__MQTT__PASSWORD": password})


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


def test_agent_and_server_killed_between_early_exit_and_verdict(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    password = mosquitto.add_device(DEVICE)

    async def seed() -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'server.db'}")
        await seed_household(db, DEVICE, receiver.apprise_url, language="en")
        await db.close()

    asyncio.run(seed())
    server_config = _server_config(tmp_path, mosquitto)
    server_config.write_text(server_config.read_text() + _NO_FOLDING)
    server = _start_server(tmp_path, server_config)
    agent_config, agent_log = tls_agent_config(tmp_path, mosquitto, DEVICE), tmp_path / "agent.log"
    agent = _start_agent(agent_config, agent_log, password, mean_interval=2.0)
    try:
        # The person is through the door: the agent reports at once, then dies with the
        # door still open.
        assert wait_for_log(agent_log, '"msg": "early exit"', timeout=90), agent_log.read_text()
        # ... once the broker has it (the outbox keeps a record until its PUBACK; over
        # TLS that takes a moment longer than the log line).
        outbox = tmp_path / "agent-data" / "outbox.db"
        wait_until(lambda: _query(outbox, "SELECT COUNT(*) FROM outbox WHERE topic LIKE "
                                          "'%/event'")[0][0] == 0,
                   "the early exit acknowledged by the broker", 10, every=0.1)
        _kill(agent)
        assert '"msg": "door episode verdict"' not in agent_log.read_text()
        # The alert reaches the phone; then the server dies too.
        assert receiver.wait_for(1, timeout=30)
        _kill(server)
        # The agent comes back (the door shut now), ends the episode and sends its verdict
        # into the broker while no server runs.
        offset = agent_log.stat().st_size
        agent = _start_agent(agent_config, agent_log, password, mean_interval=1e9)
        assert wait_for_log(agent_log, '"msg": "door episode verdict"', timeout=60,
                            after=offset), agent_log.read_text()[offset:]
        wait_until(lambda: _query(outbox, "SELECT COUNT(*) FROM outbox WHERE topic LIKE "
                                          "'%/event'")[0][0] == 0,
                   "the verdict acknowledged by the broker", 30, every=0.1)
        _kill(agent)
        server = _start_server(tmp_path, server_config)
        db = tmp_path / "server.db"
        wait_until(lambda: _query(db, "SELECT verdict FROM incidents")[0][0] is not None,
                   "the verdict on the incident", 30, every=0.1)
        # A window, not a wait: a second alert, if one were (wrongly) queued, would go out now.
        time.sleep(1.0)
    finally:
        for proc in (agent, server):
            if proc.poll() is None:
                _kill(proc)
    incidents = _query(db, "SELECT kind, verdict FROM incidents")
    assert len(incidents) == 1
    kind, verdict = incidents[0]
    assert kind == "breach"
    assert verdict in ("confirmed", "reentry", "handover")
    reports = _query(db, "SELECT early_row_id IS NOT NULL, final_row_id IS NOT NULL "
                         "FROM episode_reports")
    assert reports == [(1, 1)]
    # One early report and one verdict were stored: the restarted agent sent no second exit.
    kinds = _query(db, "SELECT kind, payload FROM events WHERE kind IN ('exit', 'handover') "
                       "ORDER BY seq")
    assert [json.loads(str(p)).get("report") for _, p in kinds] == ["early", "final"]
    alerts = [r for r in receiver.received if str(r.get("title", "")).startswith(
        "[Quarantine alert]")]
    assert len(alerts) == 1, receiver.received
    assert len(_query(db, "SELECT id FROM notifications WHERE purpose = 'alert'")) == 1
    expected_others = 0 if verdict == "confirmed" else 1  # the withdrawal, told once
    assert len(receiver.received) == 1 + expected_others, json.dumps(receiver.received)

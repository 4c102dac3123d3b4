"""10,000 events through broker restarts, server and agent SIGKILLs and network cuts.

Real processes throughout: Mosquitto on our configuration, ``doorwatch server
run`` on SQLite, the fleet simulator (the agent's own outbox and link) behind a
TCP proxy that cuts the network. The database must end with exactly 10,000
events, no duplicates, and no seq gap left.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from broker.mosquitto.directory import SERVER_USER
from tests.conftest import Mosquitto, doorwatch_process, wait_for_log
from tests.faults.conftest import provision_fleet
from tests.faults.proxy import CuttableProxy
from tests.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.faults, pytest.mark.slow]

DEVICES = 10
PER_DEVICE = 1000
TOTAL = DEVICES * PER_DEVICE


class Rig:
    """The processes under test and the faults applied to them."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, creds: Path, proxy: CuttableProxy):
        self.tmp = tmp_path
        self.broker = broker
        self.creds = creds
        self.proxy = proxy
        self.db = tmp_path / "server.db"
        self.config = tmp_path / "server.toml"
        self.config.write_text(tomli_w.dumps({
            "database_url": f"sqlite:///{self.db}", "data_dir": str(tmp_path / "server"),
            "instance": "faults",
            "mqtt": {"host": "127.0.0.1", "port": broker.port,
                     "password": broker.broker.server_password,
                     "client_id": "doorwatch-server-faults"},
        }))
        self.server = self._server()
        self.sim = self._sim()
        self.log: list[str] = []

    def _server(self) -> subprocess.Popen[bytes]:
        log = self.tmp / "server.log"
        offset = log.stat().st_size if log.exists() else 0
        process = doorwatch_process("server", "run", "-c", str(self.config), log=log)
        assert wait_for_log(log, '"msg": "subscribed"', timeout=60, after=offset)
        return process

    def _sim(self) -> subprocess.Popen[bytes]:
        return doorwatch_process(
            # TLS through the proxy (no device credential works on the loopback listener).
            "sim", "--credentials", str(self.creds), "--host", "127.0.0.1",
            "--port", str(self.proxy.port), "--ca-file", str(self.broker.broker.ca_cert_file),
            "--data-dir", str(self.tmp / "sim"), "--events", str(PER_DEVICE), "--rate", "300",
            "--drain-timeout", "240", log=self.tmp / "sim.log")

    def stored(self) -> int:
        with sqlite3.connect(self.db, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def wait_stored(self, at_least: int, timeout: float = 120) -> None:
        wait_until(lambda: self.stored() >= at_least, f"{at_least} events stored", timeout,
                   every=0.2, detail=lambda: f"{self.stored()} stored")

    def restart_broker(self) -> None:
        self.broker.restart()

    def _server_connected(self) -> bool:
        """Whether the broker holds a connection of the server's account (its log since it
        last started: the broker names a client by its user name)."""
        log = self.broker.broker.log_file.read_text(errors="replace")
        connected = False
        for line in log[log.rfind(" running"):].splitlines():
            if f" as {SERVER_USER} (" in line:
                connected = True
            elif f"Client {SERVER_USER} " in line:  # closed, disconnected, timed out
                connected = False
        return connected

    def kill_server(self) -> None:
        self.server.kill()
        self.server.wait()
        # The next server starts once the broker has let go of the killed one's connection
        # (it may have had none: reconnecting after a broker restart).
        wait_until(lambda: not self._server_connected(),
                   "the broker to see the killed server's socket close")
        self.server = self._server()

    def kill_agents(self) -> None:
        self.sim.kill()
        self.sim.wait()
        self.sim = self._sim()

    def cut_network(self) -> None:
        self.proxy.cut()
        time.sleep(3)  # not a wait: the fault itself, a network down for three seconds
        self.proxy.restore()

    def stop(self) -> None:
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(timeout=30)
        if self.sim.poll() is None:
            self.sim.kill()


def test_ten_thousand_events_survive_every_fault_exactly_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    proxy = CuttableProxy(mosquitto.tls_port)
    proxy.start()
    creds = provision_fleet(mosquitto, f"sqlite:///{tmp_path / 'server.db'}", DEVICES, tmp_path)
    rig = Rig(tmp_path, mosquitto, creds, proxy)
    faults: list[tuple[float, str, Callable[[], None]]] = [
        (0.04, "broker restart", rig.restart_broker),
        (0.10, "server SIGKILL", rig.kill_server),
        (0.17, "agents SIGKILL", rig.kill_agents),
        (0.24, "network cut", rig.cut_network),
        (0.31, "broker restart", rig.restart_broker),
        (0.38, "server SIGKILL", rig.kill_server),
        (0.45, "agents SIGKILL", rig.kill_agents),
        (0.52, "network cut", rig.cut_network),
        (0.58, "broker restart", rig.restart_broker),
        (0.64, "server SIGKILL", rig.kill_server),
        (0.71, "agents SIGKILL", rig.kill_agents),
    ]
    applied = []
    try:
        for share, name, fault in faults:
            rig.wait_stored(int(TOTAL * share))
            stored = rig.stored()
            assert stored < TOTAL, f"{name} came too late: everything was already stored"
            fault()
            applied.append((name, stored))
        assert rig.sim.wait(timeout=300) == 0, (tmp_path / "sim.log").read_text()[-3000:]
        rig.wait_stored(TOTAL)
    finally:
        rig.stop()
        proxy.stop()
    print("faults applied at stored counts:", applied)
    with sqlite3.connect(rig.db) as conn:
        stored, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT device_id || ':' || seq) FROM events").fetchone()
        gaps = conn.execute("SELECT COUNT(*) FROM seq_gaps").fetchone()[0]
        per_device = dict(conn.execute("SELECT device_id, MAX(seq) FROM events GROUP BY 1"))
    assert (stored, distinct, gaps) == (TOTAL, TOTAL, 0)
    assert set(per_device.values()) == {PER_DEVICE}
    assert len(applied) == len(faults)

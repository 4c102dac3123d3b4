"""``doorwatch broker run``'s pid file: never clobbered by a second run, removed on a clean stop.

`device provision` makes the running broker reload through that file; a second
`broker run` on a running directory used to overwrite it with its dead child's
pid, and the newly provisioned device was refused until someone sent HUP.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.runner import find_mosquitto
from ground.ports import free_ports
from tests.broker.test_cli import doorwatch
from tests.conftest import doorwatch_process, wait_for_log
from tests.requirements import need
from tests.waiting import wait_until

pytestmark = pytest.mark.broker


def test_second_run_leaves_the_live_pid_file_and_a_clean_stop_removes_it(
    tmp_path: Path,
) -> None:
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    path = tmp_path / "broker"
    port, loopback = free_ports(2)
    assert doorwatch("broker", "init", str(path), "--port", str(port), "--host", "127.0.0.1",
                     "--loopback-port", str(loopback)).returncode == 0
    broker = BrokerDir(path)
    log = tmp_path / "run.log"
    first = doorwatch_process("broker", "run", str(path), log=log, env={"DOORWATCH_LANG": "en"})
    try:
        assert wait_for_log(log, "mosquitto running"), log.read_text()
        live = broker.pid_file.read_text()
        assert broker.running_pid() == int(live)
        second = doorwatch("broker", "run", str(path))
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert live.strip() in second.stderr
        assert broker.pid_file.read_text() == live  # untouched
        # Provisioning still reaches the live broker through the pid file.
        broker.set_password("door-new", "x" * 24)
        assert broker.reload()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0
        assert not broker.pid_file.exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # A pid file naming a process that is gone (a power cut) does not block the next start.
    broker.pid_file.write_text("999999\n")
    again = doorwatch_process("broker", "run", str(path), log=log)
    try:
        wait_until(lambda: broker.running_pid() is not None, "the broker's pid file", 15,
                   detail=lambda: log.read_text(errors="replace")[-2000:])
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=15)
    assert not broker.pid_file.exists()

"""Operator and installer commands as processes: init, run, provision, install, revoke."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.runner import find_mosquitto, wait_for_port
from ground.ports import free_ports
from tests.broker.helpers import connect
from tests.conftest import Mosquitto, doorwatch_process
from tests.requirements import need

pytestmark = pytest.mark.broker


def doorwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``doorwatch ARGS`` to completion (English output)."""
    return subprocess.run([sys.executable, "-m", "doorwatch", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LANG": "en_US.UTF-8"},
                          check=False)


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    """`doorwatch broker init` on free ports, with the loopback listener."""
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    path = tmp_path / "broker"
    port, loopback = free_ports(2)
    done = doorwatch("broker", "init", str(path), "--port", str(port),
                     "--host", "127.0.0.1", "--loopback-port", str(loopback))
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def running(broker_dir: Path, tmp_path: Path) -> Iterator[Mosquitto]:
    """`doorwatch broker run` as the operator starts it."""
    broker = BrokerDir(broker_dir)
    process = doorwatch_process("broker", "run", str(broker_dir), log=tmp_path / "run.log")
    assert wait_for_port("127.0.0.1", broker.port, 15), (tmp_path / "run.log").read_text()
    yield Mosquitto(broker)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def test_init_writes_owner_only_secrets_and_refuses_to_overwrite(broker_dir: Path) -> None:
    assert stat.S_IMODE(broker_dir.stat().st_mode) == 0o700
    for name in ("ca.key", "server.key", "passwd", "acl", "mosquitto.conf",
                 "doorwatch-broker.json"):
        assert stat.S_IMODE((broker_dir / name).stat().st_mode) == 0o600, name
    again = doorwatch("broker", "init", str(broker_dir))
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr


def test_run_refuses_a_key_readable_by_others(broker_dir: Path) -> None:
    (broker_dir / "server.key").chmod(0o644)
    done = doorwatch("broker", "run", str(broker_dir))
    assert done.returncode == 1
    assert f"{broker_dir / 'server.key'}: unsafe permissions 0644" in done.stderr


def test_provision_install_connect_revoke(running: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "server.db"}"\n')
    bundle = tmp_path / "door-c.bundle.json"
    common = ("--broker-dir", str(running.broker.path), "--config", str(config))
    done = doorwatch("device", "provision", "--id", "door-c", "--out", str(bundle), *common)
    assert done.returncode == 0, done.stderr
    assert "door-c provisioned" in done.stdout
    installed = doorwatch("agent", "install-bundle", str(bundle),
                          "--config-dir", str(tmp_path / "etc"),
                          "--data-dir", str(tmp_path / "data"))
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "etc" / "agent.toml").exists()
    password = _stored(tmp_path / "data" / "credentials.json")
    device = connect(running, "door-c", password, ca_file=tmp_path / "etc" / "ca.crt")
    assert not device.refused
    device.close()
    revoked = doorwatch("device", "revoke", "door-c", *common)
    assert revoked.returncode == 0, revoked.stderr
    again = connect(running, "door-c", password)
    assert again.refused
    again.close()
    unknown = doorwatch("device", "revoke", "door-c", *common)
    assert unknown.returncode == 1
    assert "device door-c: has no broker credentials" in unknown.stderr
    for command in ("revoke", "rotate"):  # an id never provisioned: a typo, say so
        typo = doorwatch("--lang", "en", "device", command, "door-cc", *common)
        assert typo.returncode == 1, typo.stdout
        assert "device door-cc is not registered: it was never provisioned" in typo.stderr


def test_install_of_a_corrupt_bundle_names_the_file(tmp_path: Path) -> None:
    bundle = tmp_path / "broken.bundle.json"
    bundle.write_text('{"format": "doorwatch-provisioning-bundle", "version": 1')
    done = doorwatch("agent", "install-bundle", str(bundle), "--config-dir", str(tmp_path / "e"))
    assert done.returncode == 2
    assert f"{bundle}: not a bundle (not JSON" in done.stderr


def _stored(path: Path) -> str:
    import json

    value = json.loads(path.read_text())["current"]
    assert isinstance(value, str)
    return value


def test_a_second_rotate_of_a_device_being_rotated_says_so(
    running: Mosquitto, tmp_path: Path
) -> None:
    """`device rotate` while another rotation of that device holds it (its lock in the broker
    directory, held here as that other process would): refused at once, in both languages,
    with nothing changed."""
    config = tmp_path / "server.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "server.db"}"\n')
    common = ("--broker-dir", str(running.broker.path), "--config", str(config))
    done = doorwatch("device", "provision", "--id", "door-c",
                     "--out", str(tmp_path / "door-c.bundle.json"), *common)
    assert done.returncode == 0, done.stderr
    before = (running.broker.path / "passwd").read_bytes()
    fd = os.open(running.broker.path / ".rotate-door-c.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for language, said in (
                ("en", "A rotation is already in progress for device door-c"),
                ("zh_CN", "设备 door-c 正在更换密码")):
            second = doorwatch("--lang", language, "device", "rotate", "door-c",
                               "--timeout", "30", *common)
            assert second.returncode == 1, second.stdout
            assert said in second.stderr
    finally:
        os.close(fd)
    assert (running.broker.path / "passwd").read_bytes() == before

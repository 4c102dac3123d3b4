"""Shared fixtures: a private Mosquitto on our own config, a notification receiver, processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.passwords import new_secret
from broker.mosquitto.runner import find_mosquitto, start_mosquitto
from ground.ports import free_ports
from tests.hang_report import start_hang_report
from tests.requirements import need
from tests.waiting import wait_until

# Files one worker runs whole under ``make test`` (pytest-xdist): their module fixture is
# costly or shared by their tests (the built .deb, the profile venvs, the RabbitMQ
# profile's node, the fuzz rigs), so it is built once.
WHOLE_FILES = frozenset({
    "tests/agent/test_deb_package.py",
    "tests/broker/test_rabbitmq_profile.py",
    "tests/fuzz/test_api_fuzz.py",
    "tests/fuzz/test_config_fuzz.py",
    "tests/fuzz/test_ingest_fuzz.py",
    "tests/profiles/test_profiles.py",
})


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadgroup``: tests one at a time, each of WHOLE_FILES as one unit.

    xdist's own loadgroup (``xdist_group`` marks) does nothing under pytest 9: it renames
    ``item._nodeid``, which pytest 9 no longer has, so every test went alone and the
    .deb, the venvs and the RabbitMQ node were each built on both workers.
    """
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in WHOLE_FILES else nodeid

    return WholeFiles(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Report a hung test's asyncio tasks before pytest-timeout stops it (tests/hang_report.py)."""
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(
        item.config.getini("timeout") or 0)
    timer = start_hang_report(item.nodeid, timeout)
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a slow test first; each file's tests stay together, in their order.

    ``make test`` hands tests to two workers in this order (pytest-xdist with
    ``--dist loadgroup --no-loadscope-reorder``), so the long ones start early and the
    many short ones fill in at the end, when a long one left last would keep one worker
    busy and the other idle.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order kept within


@dataclass
class Mosquitto:
    """A private Mosquitto started with the project's generated configuration."""

    broker: BrokerDir
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """Plaintext listener port (127.0.0.1 only): the server's and the admin's, no device's."""
        port = self.broker.loopback_port
        assert port is not None, "this broker directory has no loopback listener"
        return port

    @property
    def tls_port(self) -> int:
        """TLS listener port (the one devices use in production)."""
        return self.broker.port

    @property
    def admin_password(self) -> str:
        """The admin tools' account password."""
        password = self.broker.state().admin_password
        assert password is not None
        return password

    def device_mqtt(self, password: str) -> dict[str, object]:
        """A device's ``[mqtt]`` settings: TLS, as in production (no device credential
        works on the loopback listener)."""
        return {"host": "localhost", "port": self.tls_port, "tls": True,
                "ca_file": str(self.broker.ca_cert_file), "password": password}

    def device_args(self) -> list[str]:
        """``doorwatch sim`` options for reaching this broker as devices (TLS)."""
        return ["--host", "localhost", "--port", str(self.tls_port),
                "--ca-file", str(self.broker.ca_cert_file)]

    def connect_device(self, client: mqtt.Client, *, keepalive: int = 60) -> None:
        """Connect a paho client (with a device's credentials set) over TLS."""
        client.tls_set(ca_certs=str(self.broker.ca_cert_file))
        client.connect("localhost", self.tls_port, keepalive=keepalive)

    def start(self) -> None:
        """Start (or start again after :meth:`stop`)."""
        self.process = start_mosquitto(self.broker)

    def stop(self, *, kill: bool = False) -> None:
        """Stop gracefully (persistence saved) or with SIGKILL."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Graceful stop, then start on the same port and files."""
        self.stop()
        self.start()

    def add_device(self, device_id: str, *, reload: bool = True) -> str:
        """Create credentials for ``device_id``; reload the broker; return the password."""
        password = new_secret()
        self.broker.set_password(device_id, password)
        if reload:
            self.reload()
        return password

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads the password file and the ACL; return once it has.

        Mosquitto logs "Reloading config." in the loop turn that re-reads the files,
        and serves no client in between, so any connection after the line sees them.
        """
        if self.process is not None:
            before = self._reloads()
            self.process.send_signal(1)
            wait_until(lambda: self._reloads() > before, "Mosquitto to log its reload",
                       detail=lambda: self.broker.log_file.read_text(errors="replace")[-2000:])

    def _reloads(self) -> int:
        log = self.broker.log_file
        return log.read_text(errors="replace").count("Reloading config.") if log.exists() else 0


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """Start a private Mosquitto on a free port with the configuration we ship."""
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    broker = BrokerDir(tmp_path / "broker")
    port, loopback = free_ports(2)
    broker.init(port=port, host="127.0.0.1", loopback_port=loopback)
    instance = Mosquitto(broker)
    instance.start()
    yield instance
    instance.stop()


@dataclass
class Receiver:
    """A local HTTP endpoint collecting what Apprise's json:// plugin posts."""

    port: int
    received: list[dict[str, object]] = field(default_factory=list)
    fail_next: int = 0
    paths: list[str] = field(default_factory=list)  # the URL path of each received post

    def to(self, path: str) -> list[dict[str, object]]:
        """What was posted to ``path`` (``/notify`` unless the Apprise URL named another)."""
        return [body for body, at in zip(self.received, self.paths, strict=False) if at == path]

    @property
    def apprise_url(self) -> str:
        """The Apprise URL that posts to this receiver."""
        return f"json://127.0.0.1:{self.port}/notify"

    def wait_for(self, count: int, timeout: float = 20.0) -> bool:
        """Wait until ``count`` notifications arrived (:class:`WaitTimeoutError` if they do not)."""
        return bool(wait_until(lambda: len(self.received) >= count,
                               f"{count} notification(s) at the receiver", timeout,
                               detail=lambda: f"received: {self.received}"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP server that notifications are delivered to."""
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.fail_next > 0:
                state.fail_next -= 1
                self.send_response(500)
                self.end_headers()
                return
            state.paths.append(self.path)
            state.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def wait_for_log(path: Path, text: str, timeout: float = 20.0, after: int = 0) -> bool:
    """Wait until ``text`` appears in the log file ``path`` (past byte offset ``after``).

    A miss fails with :class:`WaitTimeoutError` showing the log's end.
    """
    return bool(wait_until(
        lambda: path.exists() and text in path.read_text(errors="replace")[after:],
        f"{text!r} in {path.name}", timeout,
        detail=lambda: path.read_text(errors="replace")[-3000:] if path.exists() else "no log"))


def doorwatch_process(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``python -m doorwatch ARGS`` with its output going to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "doorwatch", *args],
        stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )

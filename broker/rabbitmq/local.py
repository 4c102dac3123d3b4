"""A RabbitMQ cluster of several nodes on this machine (loopback), for tests and benchmarks.

Each node gets its own node name, AMQP/MQTT/distribution ports and data
directory; the cluster has its own Erlang cookie (in its own ``HOME``) and its
own epmd port, so a RabbitMQ already running here (the system's, on 5672 and
epmd 4369) is never touched. Nodes boot in parallel, then join the first one.
The accounts, permissions and the ingest queue come from
:func:`broker.rabbitmq.definitions.definitions`, imported once the cluster has
formed (before any device may connect: see that module).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground.errors import DoorwatchError
from ground.files import write_private
from ground.ports import free_ports

__all__ = ["RABBIT_BIN", "LocalNode", "LocalRabbitCluster", "rabbitmq_available"]

RABBIT_BIN = Path(os.environ.get("DOORWATCH_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
_BOOT_TIMEOUT_S = 180.0


def rabbitmq_available() -> bool:
    """True if RabbitMQ's scripts (Debian's rabbitmq-server package) are installed."""
    return (RABBIT_BIN / "rabbitmq-server").exists() and (RABBIT_BIN / "rabbitmqctl").exists()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


@dataclass
class LocalNode:
    """One node: name, ports, folder, and its process while it runs."""

    name: str
    dir: Path
    amqp_port: int
    mqtt_port: int
    dist_port: int
    mqtt_tls_port: int
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """True while the node's start script runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the node: its whole process group (the start script runs the Erlang
        VM as a child, so killing the script alone would leave the node running)."""
        if self.process is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


class LocalRabbitCluster:
    """``size`` RabbitMQ nodes with the MQTT plugin, clustered, on 127.0.0.1."""

    def __init__(self, root: Path, size: int = 3, *, prefix: str = "doorwatch",
                 definitions: dict[str, Any] | None = None, admin_password: str | None = None,
                 tls_dir: Path | None = None):
        self.root = root
        # ca.crt, server.crt, server.key for an MQTT TLS listener on every node (none: no TLS).
        self.tls_dir = tls_dir
        self.home = root / "home"
        self.definitions = definitions
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.epmd_port, *ports = free_ports(1 + 4 * size)
        tag = secrets.token_hex(3)  # node names unique on this host, run after run
        self.nodes = [LocalNode(f"{prefix}{tag}n{i + 1}@localhost", root / f"node{i + 1}",
                                ports[4 * i], ports[4 * i + 1], ports[4 * i + 2],
                                ports[4 * i + 3])
                      for i in range(size)]

    # -- environment and files ------------------------------------------------------

    def env(self, node: LocalNode | None = None) -> dict[str, str]:
        """Environment for the start script (``node``) or for rabbitmqctl (none)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "LANG": "C.UTF-8", "ERL_EPMD_PORT": str(self.epmd_port),
               "ERL_EPMD_ADDRESS": "127.0.0.1",
               # Never the system's /etc/rabbitmq/rabbitmq-env.conf (it names the system node).
               "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf")}
        if node is not None:
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.amqp_port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_CONFIG_FILE": str(node.dir / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.dir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.dir / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(node.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.dir / "log"),
                "RABBITMQ_PID_FILE": str(node.dir / "pid"),
                "RABBITMQ_SERVER_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            })
        return env

    def _write_files(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            write_private(cookie, secrets.token_hex(20).upper())
            cookie.chmod(0o400)
        (self.root / "rabbitmq-env.conf").write_text("")
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            (node.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
            write_private(node.dir / "rabbitmq.conf", node_config(
                amqp=f"127.0.0.1:{node.amqp_port}", mqtt=f"127.0.0.1:{node.mqtt_port}",
                admin_password=self.admin_password,
                mqtt_tls=f"127.0.0.1:{node.mqtt_tls_port}" if self.tls_dir else None,
                tls_dir=self.tls_dir))

    # -- control ----------------------------------------------------------------------

    def ctl(self, node: LocalNode, *args: str, timeout: float = 120) -> str:
        """Run ``rabbitmqctl -n NODE ARGS``; raise with its output if it fails."""
        out = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
                             env=self.env(), capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode:
            raise DoorwatchError(f"rabbitmqctl {' '.join(args)} on {node.name} failed: "
                                 f"{(out.stderr or out.stdout).strip()[:2000]}")
        return out.stdout

    def _spawn(self, node: LocalNode) -> None:
        log = (node.dir / "stdout.log").open("ab")
        node.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")],
                                        env=self.env(node), stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)

    def _await(self, node: LocalNode) -> None:
        # rabbitmqctl await_startup gives up at once while the node is not registered
        # with epmd yet; the AMQP listener opens late in the boot, so wait for it first.
        def up() -> bool:
            return node.process is None or node.process.poll() is not None or _port_open(
                node.amqp_port)
        _wait(up, _BOOT_TIMEOUT_S, node.name)
        if not node.alive():
            raise DoorwatchError(f"RabbitMQ node {node.name} exited during start-up; "
                                 f"see {node.dir / 'stdout.log'}")
        self.ctl(node, "await_startup", "--timeout", str(int(_BOOT_TIMEOUT_S)),
                 timeout=_BOOT_TIMEOUT_S + 10)

    def start(self) -> float:
        """Boot every node (in parallel), cluster them, import the definitions; seconds taken."""
        started = time.monotonic()
        self._write_files()
        try:
            for node in self.nodes:
                self._spawn(node)
            for node in self.nodes:
                self._await(node)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                self.ctl(node, "stop_app")
                self.ctl(node, "join_cluster", first.name)
                self.ctl(node, "start_app")
            if self.definitions is not None:
                path = self.root / "definitions.json"
                write_private(path, json.dumps(self.definitions))
                self.ctl(first, "import_definitions", str(path))
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def start_node(self, node: LocalNode) -> float:
        """Start a stopped or killed node again (it rejoins with its data); seconds taken."""
        started = time.monotonic()
        self._spawn(node)
        self._await(node)
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop every node (SIGTERM: the start script stops the VM), then our epmd."""
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                with contextlib.suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(60)
                except subprocess.TimeoutExpired:
                    node.kill()
                # Whatever is left of its process group (the VM if the script died first).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node.process.pid, signal.SIGKILL)
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env(),
                       capture_output=True, check=False, timeout=30)

    # -- addresses ----------------------------------------------------------------------

    @property
    def mqtt_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every node's MQTT listener."""
        return [("127.0.0.1", node.mqtt_port) for node in self.nodes]

    @property
    def amqp_urls(self) -> list[str]:
        """Every node's AMQP address as ``host:port``."""
        return [f"127.0.0.1:{node.amqp_port}" for node in self.nodes]

    def queue_leader(self, queue: str) -> LocalNode:
        """The node leading ``queue`` (a quorum queue) now."""
        for node in self.nodes:
            if not node.alive():
                continue
            out = self.ctl(node, "list_queues", "name", "leader", "--quiet",
                           "--no-table-headers")
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == queue:
                    return next(n for n in self.nodes if n.name == parts[1])
        raise DoorwatchError(f"queue {queue} not found")


def node_config(*, amqp: str, mqtt: str, admin_password: str, mqtt_tls: str | None = None,
                tls_dir: Path | None = None) -> str:
    """One node's rabbitmq.conf (the MQTT plugin's settings are the point)."""
    text = (
        f"listeners.tcp.default = {amqp}\n"
        f"mqtt.listeners.tcp.default = {mqtt}\n"
        "mqtt.allow_anonymous = false\n"
        "mqtt.vhost = /\n"
        "mqtt.exchange = amq.topic\n"
        # A device's persistent session (its command subscription) must survive the
        # node it was created on: quorum, not classic, session queues.
        "mqtt.durable_queue_type = quorum\n"
        # The first node creates this account instead of guest/guest.
        "default_user = doorwatch-admin\n"
        f"default_pass = {admin_password}\n"
        "loopback_users = none\n"
        # A node cut off from the majority stops serving rather than diverge.
        "cluster_partition_handling = pause_minority\n"
        "disk_free_limit.absolute = 100MB\n"
        "log.console = false\n"
        "log.file.level = warning\n"
    )
    if mqtt_tls is not None and tls_dir is not None:
        text += (
            f"mqtt.listeners.ssl.default = {mqtt_tls}\n"
            f"ssl_options.cacertfile = {tls_dir / 'ca.crt'}\n"
            f"ssl_options.certfile = {tls_dir / 'server.crt'}\n"
            f"ssl_options.keyfile = {tls_dir / 'server.key'}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            "ssl_options.versions.1 = tlsv1.3\n"
            "ssl_options.versions.2 = tlsv1.2\n"
        )
    return text

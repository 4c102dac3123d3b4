"""Three-node RabbitMQ and NATS JetStream clusters on loopback, for the broker choice.

Each node has its own name, ports, data directory and (RabbitMQ) Erlang cookie and
epmd port, so the machine's own RabbitMQ (5672) and NATS (4222) are never touched.
The clusters are started and stopped here; nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from ground.ports import free_ports

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
NATS_BIN = Path("/usr/sbin/nats-server")


@dataclass
class Node:
    """One broker node: its process and addresses."""

    name: str
    dir: Path
    mqtt_port: int
    native_port: int  # AMQP for RabbitMQ, NATS client port for NATS
    extra: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0

    @property
    def pid(self) -> int:
        """The node's process id (beam.smp or nats-server)."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """True while the node's process runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (the fault under test).

        The whole process group: RabbitMQ's start script runs the Erlang VM as its
        child, so killing the script alone would leave the node running.
        """
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class _Cluster(ABC):
    """What both clusters do alike: restart a killed node, stop every node."""

    nodes: list[Node]

    @abstractmethod
    def start_node(self, node: Node) -> None:
        """Start one node (its data kept) and wait until it serves."""

    def restart_node(self, node: Node) -> float:
        """Start a killed node again; seconds until it serves."""
        t0 = time.monotonic()
        self.start_node(node)
        return time.monotonic() - t0

    def _stop_nodes(self, wait_s: float) -> None:
        """SIGTERM every live node, wait up to ``wait_s`` each, SIGKILL the stragglers."""
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(wait_s)
                except subprocess.TimeoutExpired:
                    node.kill()


class RabbitCluster(_Cluster):
    """Three RabbitMQ 3.10 nodes with the MQTT plugin, joined into one cluster."""

    kind = "rabbitmq"

    def __init__(self, root: Path, size: int = 3, prefix: str = "dwbench"):
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)
        self.epmd_port, *ports = free_ports(1 + 3 * size)
        self.nodes: list[Node] = []
        for i in range(size):
            amqp, mqtt, dist = ports[3 * i: 3 * i + 3]
            node = Node(f"{prefix}{i + 1}@localhost", root / f"node{i + 1}", mqtt, amqp,
                        {"dist": dist})
            self.nodes.append(node)
        self.password = secrets.token_urlsafe(12)

    def env(self, node: Node | None = None) -> dict[str, str]:
        """The environment for the server scripts and rabbitmqctl."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "LANG": "C.UTF-8", "ERL_EPMD_PORT": str(self.epmd_port),
               "ERL_EPMD_ADDRESS": "127.0.0.1",
               "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf")}
        if node is not None:
            d = node.dir
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.native_port),
                "RABBITMQ_DIST_PORT": str(node.extra["dist"]),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_PID_FILE": str(d / "pid"),
                "RABBITMQ_SERVER_ERL_ARGS": "+P 1048576 -kernel inet_dist_use_interface "
                "{127,0,0,1}",
            })
        return env

    def _write(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq-env.conf").write_text("")
        (node.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (node.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.native_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt_port}\n"
            "mqtt.allow_anonymous = false\n"
            "mqtt.vhost = /\nmqtt.exchange = amq.topic\n"
            "loopback_users = none\n"
            "cluster_partition_handling = pause_minority\n"
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\nlog.file.level = warning\n")

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        """Run rabbitmqctl against ``node``."""
        out = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
                             env=self.env(), capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
        return out.stdout

    def start_node(self, node: Node) -> None:
        """Start one node (its data directory kept) and wait until it runs."""
        self._write(node)
        t0 = time.monotonic()
        log = (node.dir / "stdout.log").open("ab")
        node.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env(node),
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        # await_startup gives up at once while the node is not yet registered with epmd;
        # the AMQP listener opens late in the boot, so wait for it first (cheap).
        _wait(lambda: node.process is not None and (node.process.poll() is not None
                                                    or _port_open(node.native_port)),
              120, node.name)
        if node.process.poll() is not None:
            raise RuntimeError(f"{node.name} exited: see {node.dir / 'stdout.log'}")
        self.ctl(node, "await_startup", "--timeout", "120", timeout=130)
        node.started_s = time.monotonic() - t0

    def start(self) -> float:
        """Start and cluster every node; return the seconds it took."""
        t0 = time.monotonic()
        first = self.nodes[0]
        self.start_node(first)
        for node in self.nodes[1:]:
            self.start_node(node)
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.ctl(first, "add_user", "bench", self.password)
        self.ctl(first, "set_permissions", "-p", "/", "bench", ".*", ".*", ".*")
        return time.monotonic() - t0

    def stop(self) -> None:
        """Stop every node and our epmd."""
        self._stop_nodes(30)
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env(),
                       capture_output=True, check=False)


class NatsCluster(_Cluster):
    """Three NATS 2.9 servers with JetStream and MQTT, routed into one cluster."""

    kind = "nats"

    def __init__(self, root: Path, size: int = 3, prefix: str = "dwbench"):
        self.root = root
        ports = free_ports(4 * size)
        self.nodes = [Node(f"{prefix}-n{i + 1}", root / f"node{i + 1}", ports[4 * i + 1],
                           ports[4 * i], {"route": ports[4 * i + 2], "http": ports[4 * i + 3]})
                      for i in range(size)]
        self.password = secrets.token_urlsafe(12)

    def _write(self, node: Node) -> Path:
        node.dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://127.0.0.1:{n.extra['route']}" for n in self.nodes
                           if n is not node)
        conf = node.dir / "nats.conf"
        conf.write_text(
            f'server_name: "{node.name}"\n'
            f"listen: 127.0.0.1:{node.native_port}\n"
            f"http: 127.0.0.1:{node.extra['http']}\n"
            f'jetstream {{ store_dir: "{node.dir / "js"}", max_memory_store: 64MB, '
            "max_file_store: 4GB }\n"
            f"cluster {{ name: dwbench, listen: 127.0.0.1:{node.extra['route']}, "
            f"routes: [{routes}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port} }}\n"
            f'authorization {{ users: [ {{ user: bench, password: "{self.password}" }} ] }}\n')
        return conf

    def _healthy(self, node: Node) -> bool:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{node.extra['http']}/healthz", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("status") == "ok")
        except (OSError, ValueError):
            return False

    def start_node(self, node: Node) -> None:
        """Start one server (its store kept) and wait until healthy."""
        conf = self._write(node)
        t0 = time.monotonic()
        log = (node.dir / "stdout.log").open("ab")
        node.process = subprocess.Popen([str(NATS_BIN), "-c", str(conf)], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: self._healthy(node), 60, node.name)
        node.started_s = time.monotonic() - t0

    def start(self) -> float:
        """Start all servers at once (a JetStream cluster needs its quorum to be healthy)."""
        t0 = time.monotonic()
        for node in self.nodes:
            conf = self._write(node)
            log = (node.dir / "stdout.log").open("ab")
            node.process = subprocess.Popen([str(NATS_BIN), "-c", str(conf)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        for node in self.nodes:
            _wait(lambda n=node: self._healthy(n), 90, node.name)  # type: ignore[misc]
        return time.monotonic() - t0

    def stop(self) -> None:
        """Stop every server."""
        self._stop_nodes(20)


def remove(root: Path) -> None:
    """Remove a cluster's directories."""
    shutil.rmtree(root, ignore_errors=True)

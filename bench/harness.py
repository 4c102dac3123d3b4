"""Pieces the benchmarks share: a private Mosquitto, a server process, databases, timing."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from broker.messages import Event, EventKind, encode, utc_now
from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.passwords import new_secret
from broker.mosquitto.runner import start_mosquitto
from ground.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PG_ADMIN_URL = os.environ.get("DOORWATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(), "platform": platform.platform(),
        "mosquitto": (mosquitto.stdout or "").splitlines()[0] if mosquitto.stdout else "?",
    }


@dataclass
class Broker:
    """A private Mosquitto with our configuration and a set of device passwords."""

    dir: BrokerDir
    process: subprocess.Popen[bytes]
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        """The loopback plaintext listener (benchmarks measure MQTT and storage, not TLS)."""
        port = self.dir.loopback_port
        assert port is not None
        return port

    def account(self, name: str) -> tuple[str, str]:
        """A further server account (user, password), live at once.

        The broker pins every client id to its username, so each consumer that
        needs a session of its own (another server instance, the bare
        subscriber) needs an account of its own.
        """
        user, password = self.dir.add_server(name)
        self.process.send_signal(signal.SIGHUP)
        time.sleep(0.3)  # Mosquitto re-reads its password files and ACL
        return user, password


@contextmanager
def mosquitto(root: Path, devices: list[str]) -> Iterator[Broker]:
    """Start Mosquitto with credentials for ``devices``; stop it afterwards."""
    broker_dir = BrokerDir(root / "broker")
    port, loopback = free_ports(2)
    # Devices may use the plaintext loopback listener here: the benchmarks measure MQTT
    # and storage, not TLS (a production broker refuses device credentials there).
    broker_dir.init(port=port, host="127.0.0.1", loopback_port=loopback, loopback_devices=True)
    passwords = {d: new_secret() for d in devices}
    for device_id, password in passwords.items():
        broker_dir.set_password(device_id, password)
    process = start_mosquitto(broker_dir)
    try:
        yield Broker(broker_dir, process, passwords)
    finally:
        process.terminate()
        process.wait(timeout=30)


def event_lines(
    device_id: str, first_seq: int, count: int, kind: EventKind = EventKind.HANDOVER
) -> bytes:
    """``count`` valid event payloads, one per line (for ``mosquitto_pub -l``)."""
    now = utc_now()
    return b"".join(
        encode(Event(device_id=device_id, seq=seq, time=now, kind=kind, armed=True)) + b"\n"
        for seq in range(first_seq, first_seq + count)
    )


def publish_lines(broker: Broker, per_device: dict[str, bytes]) -> float:
    """Publish each device's lines with QoS 1 through ``mosquitto_pub -l``; return seconds."""
    started = time.perf_counter()
    procs = []
    for device_id, lines in per_device.items():
        proc = subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-l",
             "-i", device_id, "-u", device_id, "-P", broker.passwords[device_id],
             "-t", f"doorwatch/v1/dev/{device_id}/event"],
            stdin=subprocess.PIPE)
        procs.append((proc, lines))
    for proc, lines in procs:
        assert proc.stdin is not None
        proc.stdin.write(lines)
        proc.stdin.close()
    for proc, _ in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError("mosquitto_pub failed")
    return time.perf_counter() - started


@contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """A fresh database URL of ``kind`` ('sqlite' or 'postgres'), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'bench.db'}"
        return
    import asyncpg

    name = f"doorwatch_bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_config(root: Path, broker: Broker, db_url: str, **extra: Any) -> Path:
    """Write a server TOML for ``broker`` and ``db_url``."""
    data: dict[str, Any] = {
        "database_url": db_url, "data_dir": str(root / "server"), "instance": "bench",
        "mqtt": {"host": "127.0.0.1", "port": broker.port,
                 "password": broker.dir.server_password, "client_id": "doorwatch-server-bench"},
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / "server.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def start_server(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``doorwatch server run`` and wait until it is subscribed."""
    offset = log.stat().st_size if log.exists() else 0
    handle = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "doorwatch", "server", "run", "-c", str(config),
                             "--log-level", "INFO"],
                            stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")[offset:] if log.exists() else ""
        if '"msg": "subscribed"' in text:
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {text[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not subscribe in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Store one benchmark's figures as JSON."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, ensure_ascii=False))
    return path

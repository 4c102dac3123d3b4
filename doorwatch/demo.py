"""``doorwatch demo``: the whole system on embedded defaults, on one machine.

Starts a broker (the system's Mosquitto with our generated configuration if
it is installed, otherwise the embedded pure-Python broker), the server on
SQLite in a data folder, a local notification receiver (what a grid worker's
phone would get, printed in the terminal) and several simulated households
whose doors open and whose occupants sometimes leave. Ctrl-C, or ``--for``
running out, stops every process it started and prints a summary line.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer

from ground.i18n import t
from ground.ports import free_port, free_ports

__all__ = ["demo_command"]

_HOUSEHOLDS = [
    ("张三家", "幸福路 8 号 3-502"),
    ("李四家", "光明街 21 号 1-101"),
    ("王五家", "和平里 5 栋 2 单元 601"),
    ("赵六家", "长安路 99 号 4-302"),
    ("钱七家", "新华路 12 号 7-1203"),
    ("孙八家", "建设路 3 号 2-402"),
]
_WORKERS = [("王网格", "zh_CN"), ("Grid worker Li", "en")]


def _port_or_free(preferred: int) -> int:
    """``preferred`` if nothing listens there, else any free port."""
    import socket

    if preferred == 0:
        return free_port()
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred




@dataclass
class _Receiver:
    """Local HTTP endpoint that Apprise's json:// plugin delivers to; prints each message."""

    language: str
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.end_headers()
                try:
                    note = json.loads(body)
                except json.JSONDecodeError:
                    return
                receiver.received.append(note)
                recipient = self.path.strip("/")
                line = t("demo.notification", receiver.language, recipient=recipient,
                         title=note.get("title", ""))
                typer.secho(f"\n📣 {line}", fg=typer.colors.RED, bold=True)
                typer.echo("   " + str(note.get("message", "")).replace("\n", "\n   "))

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Processes:
    """Children of the demo, stopped in reverse order of start."""

    def __init__(self, logs: Path):
        self._logs = logs
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._args: dict[str, list[str]] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self._args[name] = args
        log = (self._logs / f"{name}.log").open("ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        self.children.append((name, process))
        return process

    def stop(self, prefix: str = "") -> None:
        chosen = [(n, p) for n, p in reversed(self.children) if n.startswith(prefix)]
        for _, process in chosen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in chosen:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.children.remove((name, process))

    def dead(self) -> list[str]:
        return [n for n, p in self.children if p.poll() is not None]

    def restart(self, name: str) -> None:
        """Start a dead child again, as systemd's Restart=always would on a device."""
        self.children = [(n, p) for n, p in self.children if n != name]
        self.start(name, self._args[name])


def _query(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(sql).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0) if row else 0


def _produced(agent_dirs: list[Path]) -> tuple[int, int]:
    """Records the agents produced, and how many still wait in their outboxes."""
    produced = pending = 0
    for folder in agent_dirs:
        db = folder / "outbox.db"
        # Rows under '#...' keys are the agent's own auxiliary queue (heartbeats, snapshots).
        produced += _query(db, "SELECT COALESCE(SUM(last_seq), 0) FROM seqs "
                               "WHERE device_id NOT LIKE '#%'")
        pending += _query(db, "SELECT COUNT(*) FROM outbox WHERE device_id NOT LIKE '#%'")
    return produced, pending


@dataclass
class _Broker:
    host: str
    port: int
    server_port: int
    ca_file: Path | None
    server_password: str | None
    device_passwords: dict[str, str]
    protocol: int
    kind: str


def _start_broker(
    procs: _Processes, root: Path, device_ids: list[str], force_embedded: bool
) -> _Broker:
    from broker.mosquitto.directory import BrokerDir
    from broker.mosquitto.passwords import new_secret
    from broker.mosquitto.runner import find_mosquitto, start_mosquitto, wait_for_port

    port, loopback = free_ports(2)
    if find_mosquitto() and not force_embedded:
        # The configuration we ship: devices over TLS with our own CA, the server on
        # the loopback-only plaintext listener.
        broker = BrokerDir(root / "broker")
        broker.init(port=port, host="127.0.0.1", loopback_port=loopback)
        passwords = {d: new_secret() for d in device_ids}
        for device_id, password in passwords.items():
            broker.set_password(device_id, password)
        process = start_mosquitto(broker)
        procs.children.append(("broker", process))
        return _Broker("127.0.0.1", port, loopback, broker.ca_cert_file, broker.server_password,
                       passwords, 5, "mosquitto (devices over TLS)")
    procs.start("broker", [sys.executable, "-m", "doorwatch.embedded_broker", str(port)])
    if not wait_for_port("127.0.0.1", port, 15):
        raise RuntimeError(f"the embedded broker did not start; see {root / 'logs' / 'broker.log'}")
    return _Broker("127.0.0.1", port, port, None, None, {}, 311, "embedded (amqtt, no TLS)")


DEMO_PASSWORD = "doorwatch-demo"  # noqa: S105 - the demo's well-known login, printed on screen


async def _seed(db_url: str, receiver_port: int, device_ids: list[str]) -> None:
    """A grid with a supervisor, two workers, households in quarantine and dashboard users."""
    from datetime import timedelta

    from ground.timeutil import utcnow
    from server.admin import register_device
    from server.db.connect import open_database
    from server.domain.checkins import request_checkin
    from server.domain.followups import FollowUpIn, record_followup
    from server.domain.households import HouseholdIn, add_household
    from server.domain.people import GridIn, Role, WorkerIn, add_grid, add_worker
    from server.domain.visits import VisitIn, register_visit
    from server.web.users import create_user

    db = await open_database(db_url)
    try:
        url = f"json://127.0.0.1:{receiver_port}"
        supervisor = await add_worker(db, WorkerIn(
            name="周主任", role=Role.SUPERVISOR, apprise_urls=[f"{url}/supervisor"]), actor="demo")
        grid = await add_grid(db, GridIn(name="幸福街道第3网格", supervisor_id=supervisor),
                              actor="demo")
        workers = [
            await add_worker(db, WorkerIn(name=name, language=language, grid_id=grid,
                                          apprise_urls=[f"{url}/worker-{index + 1}"]),
                             actor="demo")
            for index, (name, language) in enumerate(_WORKERS)
        ]
        now = utcnow()
        household_ids = []
        for index, device_id in enumerate(device_ids):
            name, address = _HOUSEHOLDS[index % len(_HOUSEHOLDS)]
            start = now - timedelta(days=2 + 3 * index)
            household = await add_household(db, HouseholdIn(
                name=name, address=address, grid_id=grid, worker_id=workers[index % len(workers)],
                members=[name[0] + "先生", name[0] + "女士"], quarantine_start=start,
                quarantine_end=start + timedelta(days=14)), actor="demo")
            await register_device(db, device_id, household_id=household, actor="demo")
            household_ids.append(household)
        # Today's follow-up of the first household finds a fever (an incident for the worker);
        # the third expects the community nurse, whose comings and goings are planned (its
        # simulated door, seed 3, starts with an entry and a handover).
        first = _HOUSEHOLDS[0][0][0]
        await record_followup(db, FollowUpIn(
            household_id=household_ids[0], day=now.date(),
            temperatures={first + "先生": 36.6, first + "女士": 38.1},
            member_symptoms={first + "女士": "咳嗽"}), actor="demo")
        await register_visit(db, VisitIn(
            household_id=household_ids[min(2, len(household_ids) - 1)], starts_at=now,
            ends_at=now + timedelta(hours=2),
            visitor="刘护士", organisation="社区卫生服务站", purpose="上门核酸采样"), actor="demo")
        # A presence check-in of the second household once its device is up: the chime, then
        # the synthetic camera decides (present, or missed: an incident for the worker).
        await request_checkin(db, household_ids[min(1, len(household_ids) - 1)], actor="demo",
                              window_s=10.0, now=now + timedelta(seconds=8))
        await create_user(db, "supervisor", DEMO_PASSWORD, "supervisor", language="zh_CN")
        await create_user(db, "worker", DEMO_PASSWORD, "worker", worker_id=workers[0])
        await create_user(db, "admin", DEMO_PASSWORD, "admin", language="en")
    finally:
        await db.close()


def _wait_for_line(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {text!r} in {path}")


def _write_toml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@contextmanager
def _stack(root: Path, households: int, mean_interval: float, force_embedded: bool,
           language: str, preferred_http_port: int = 8080,
           ) -> Iterator[tuple[_Processes, _Receiver, Path, list[Path], _Broker, str]]:
    logs = root / "logs"
    logs.mkdir(parents=True)
    procs = _Processes(logs)
    receiver = _Receiver(language=language)
    receiver.start()
    device_ids = [f"door-{101 + i}" for i in range(households)]
    db_path = root / "server" / "doorwatch.db"
    db_url = f"sqlite:///{db_path}"
    http_port = _port_or_free(preferred_http_port)
    agent_dirs = [root / "agents" / d for d in device_ids]
    try:
        broker = _start_broker(procs, root, device_ids, force_embedded)
        asyncio.run(_seed(db_url, receiver.port, device_ids))
        mqtt: dict[str, Any] = {"host": broker.host, "port": broker.server_port,
                                "protocol": broker.protocol, "client_id": "doorwatch-server-demo"}
        if broker.server_password:
            mqtt["password"] = broker.server_password
        server_toml = _write_toml(root / "server.toml", {
            "database_url": db_url, "data_dir": str(root / "server"), "instance": "demo",
            "mqtt": mqtt, "rules": {"fold_window_s": 20.0},
            "notify": {"retry_delays_s": [1, 3, 10], "poll_interval_s": 0.2,
                       "dashboard_url": f"http://127.0.0.1:{http_port}"},
            "http": {"enabled": True, "port": http_port, "cookie_secure": False},
            "checkins": {"answer_grace_s": 5.0, "poll_interval_s": 1.0},
        })
        procs.start("server", [sys.executable, "-m", "doorwatch", "server", "run",
                               "-c", str(server_toml)])
        # Devices start only once the broker queues their messages for the server.
        _wait_for_line(logs / "server.log", '"msg": "subscribed"', timeout=30)
        for index, (device_id, folder) in enumerate(zip(device_ids, agent_dirs, strict=True)):
            link: dict[str, Any] = {"host": broker.host, "port": broker.port}
            if broker.ca_file is not None:
                link.update(tls=True, ca_file=str(broker.ca_file))
            if device_id in broker.device_passwords:
                link["password"] = broker.device_passwords[device_id]
            config = _write_toml(root / f"{device_id}.toml", {
                "device_id": device_id, "data_dir": str(folder), "heartbeat_interval_s": 10.0,
                "mqtt": link, "door": {"quiet_s": 1.0, "bounce_s": 0.0},
            })
            procs.start(f"agent-{device_id}", [
                sys.executable, "-m", "doorwatch", "agent", "run", "--simulate", "-c", str(config),
                "--seed", str(index + 1), "--mean-interval", str(mean_interval),
                "--exit-probability", "0.35"])
        yield procs, receiver, db_path, agent_dirs, broker, f"http://127.0.0.1:{http_port}"
    finally:
        procs.stop()
        receiver.stop()


def _status(db: Path, agent_dirs: list[Path], receiver: _Receiver) -> dict[str, int]:
    produced, pending = _produced(agent_dirs)
    return {
        "events_sent": produced,
        "events_pending_on_devices": pending,
        "events_stored": _query(db, "SELECT COUNT(*) FROM events"),
        "incidents": _query(db, "SELECT COUNT(*) FROM incidents"),
        "fever_incidents": _query(db, "SELECT COUNT(*) FROM incidents WHERE kind = 'fever'"),
        "planned_visit_events": _query(db, "SELECT COUNT(*) FROM visit_events"),
        "checkins_settled": _query(db, "SELECT COUNT(*) FROM checkins WHERE outcome IS NOT NULL"),
        "notifications_delivered": len(receiver.received),
        "rejected": _query(db, "SELECT COUNT(*) FROM rejected_messages"),
    }


def _fail(message: str, root: Path) -> int:
    typer.secho(f"{message}; see the logs in {root / 'logs'}", err=True, fg=typer.colors.RED)
    return 1


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the demo like Ctrl-C, so its children are stopped too.

    Python's default for both is to die at once, skipping every ``finally``:
    Mosquitto, the server and the agents lived on (the dashboard port held).
    A second signal while stopping is ignored; stopping has its own time limits.
    """
    def interrupt(signum: int, _frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def demo_command(
    for_seconds: Annotated[
        float | None, typer.Option("--for", help="Stop after SECONDS (default: until Ctrl-C)")
    ] = None,
    households: Annotated[int, typer.Option(min=1, max=50, help="Simulated households")] = 4,
    mean_interval: Annotated[
        float, typer.Option(help="Mean seconds between door openings per household")
    ] = 8.0,
    data_dir: Annotated[Path, typer.Option(help="Folder for the demo's state (replaced)")] = Path(
        "demo-data"),
    embedded_broker: Annotated[
        bool, typer.Option(help="Use the embedded broker even if Mosquitto is installed")
    ] = False,
    language: Annotated[
        str | None, typer.Option(help="Language of the demo's own lines (zh_CN/en; default: "
                                 "--lang / DOORWATCH_LANG, else en)")
    ] = None,
    http_port: Annotated[
        int, typer.Option(help="Dashboard port (a free one when it is taken; 0: any free one)")
    ] = 8080,
) -> None:
    """Run broker, server and simulated households; show breaches being notified."""
    from ground.logs import configure_logging

    configure_logging("WARNING")
    _stop_on_signals()
    from ground.i18n import explicit_language

    language = language or explicit_language() or "en"
    root = data_dir.resolve()
    if root.exists():
        shutil.rmtree(root)
    started = time.monotonic()
    status: dict[str, int] = {}
    with _stack(root, households, mean_interval, embedded_broker, language, http_port) as (
            procs, receiver, db, agent_dirs, broker, dashboard):
        typer.echo(f"doorwatch demo: broker {broker.kind} on {broker.host}:{broker.port}, "
                   f"{households} households, server database {db}, logs in {root / 'logs'}")
        typer.echo(f"Dashboard: {dashboard}  (log in as supervisor, worker or admin; "
                   f"password {DEMO_PASSWORD})")
        typer.echo("Press Ctrl-C to stop." if for_seconds is None else
                   f"Running for {for_seconds:.0f} s.")
        try:
            while for_seconds is None or time.monotonic() - started < for_seconds:
                time.sleep(1.0)
                if int(time.monotonic() - started) % 10 == 0:
                    status = _status(db, agent_dirs, receiver)
                    typer.echo(f"[{time.monotonic() - started:5.0f} s] " + json.dumps(status))
                for name in procs.dead():
                    if not name.startswith("agent-"):
                        raise typer.Exit(_fail(f"{name} stopped unexpectedly", root))
                    typer.secho(f"{name} stopped unexpectedly (see {root / 'logs'}); restarting "
                                "it, as systemd would on the device", err=True,
                                fg=typer.colors.YELLOW)
                    procs.restart(name)
        except KeyboardInterrupt:
            typer.echo("stopping ...")
        procs.stop("agent-")
        # Give the server time to store what the agents handed over before it stops: what
        # the broker acknowledged waits in the server's persistent session, and on a loaded
        # machine 10 s was seen to be too short for the last of it (9 of 10 stored).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = _status(db, agent_dirs, receiver)
            handed_over = status["events_sent"] - status["events_pending_on_devices"]
            if status["events_stored"] >= handed_over:
                break
            time.sleep(0.3)
        status = _status(db, agent_dirs, receiver)
    typer.echo("summary: " + json.dumps(status))

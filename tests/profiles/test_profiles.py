"""Each install profile on its own, in a fresh venv: the device's ``[agent]`` and the ``[server]``.

CI used to test everything in one venv with every extra, so a device installed
as the guide says could not even run ``doorwatch --help`` (the CLI imported the
server). Here each profile is installed from the project's wheel into its own
venv, must lack the other side's libraries, runs its own commands, and then an
agent from the agent-only venv (simulated door, provisioned through the real
bundle, TLS) and a server from the server-only venv store an event end to end
through a real Mosquitto started with the project's configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import Mosquitto, wait_for_log
from tests.paths import REPO_ROOT
from tests.requirements import need
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.broker]

# What each profile must not have: the other side's libraries.
ABSENT = {
    "agent": ("fastapi", "asyncpg", "apprise", "uvicorn", "starlette"),
    "server": ("cv2", "gpiozero", "numpy"),
}
PRESENT = {
    "agent": ("cv2", "gpiozero", "paho", "aiosqlite"),
    "server": ("fastapi", "asyncpg", "apprise", "paho"),
}
SOURCES = ("pyproject.toml", "README.md", "ground", "doorwatch", "firmware_config", "broker",
           "sensors", "agent", "server")


def _run(argv: list[str], *, timeout: float = 600, check: bool = True,
         env: dict[str, str] | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})}, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the checkout stays clean)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    done = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                 str(root / "dist"), str(source)], check=False)
    need("packages", done.returncode == 0,
         f"cannot build the project's wheel (setuptools from the package index or pip "
         f"cache): {done.stderr[-1500:]}")
    (found,) = (root / "dist").glob("doorwatch-*.whl")
    return found


class Profile:
    """A venv holding one install profile of doorwatch and nothing else."""

    def __init__(self, name: str, root: Path, wheel: Path):
        self.name = name
        self.root = root
        started = time.monotonic()
        _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
        # The test venv's pip installs into the new one: no pip bootstrap per venv.
        done = _run([sys.executable, "-m", "pip", "--python", str(self.python), "install",
                     "--quiet", f"{wheel}[{name}]"], check=False)
        need("packages", done.returncode == 0,
             f"cannot install doorwatch[{name}] into a fresh venv (no package index or pip "
             f"cache here?): {done.stderr[-1500:]}")
        self.install_s = time.monotonic() - started

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.root / "bin" / "python"

    def doorwatch(self, *args: str, check: bool = True, timeout: float = 120,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the venv's own ``doorwatch`` console script (outside the checkout)."""
        return _run([str(self.root / "bin" / "doorwatch"), *args], check=check,
                    timeout=timeout, cwd=cwd, env={"DOORWATCH_LANG": "en"})

    def has(self, module: str) -> bool:
        """Whether ``module`` can be imported in the venv."""
        probe = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
        return _run([str(self.python), "-c", probe]).stdout.strip() == "True"

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start the venv's ``doorwatch ARGS`` in the background, output to ``log``."""
        handle = log.open("ab")
        return subprocess.Popen([str(self.root / "bin" / "doorwatch"), *args], cwd=log.parent,
                                stdout=handle, stderr=subprocess.STDOUT,
                                env={**os.environ, "DOORWATCH_LANG": "en"})


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> dict[str, Profile]:
    """Fresh venvs with ``doorwatch[agent]`` and ``doorwatch[server]``, installed side by side.

    In parallel: an install mostly waits for the disk and unpacks wheels, and
    CI's time is what the two together take.
    """
    root = tmp_path_factory.mktemp("venvs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(Profile, name, root / name, wheel)
                   for name in ("agent", "server")}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def agent_profile(profiles: dict[str, Profile]) -> Profile:
    """The venv with ``doorwatch[agent]`` only."""
    return profiles["agent"]


@pytest.fixture(scope="module")
def server_profile(profiles: dict[str, Profile]) -> Profile:
    """The venv with ``doorwatch[server]`` only."""
    return profiles["server"]


def _profile_figures(*profiles: Profile) -> None:
    out = REPO_ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "profiles.json").write_text(json.dumps(
        {p.name: {"install_s": round(p.install_s, 1)} for p in profiles}, indent=1))


def _check_libraries(profile: Profile) -> None:
    installed = {module: profile.has(module) for module in (*ABSENT[profile.name],
                                                            *PRESENT[profile.name])}
    assert [m for m in ABSENT[profile.name] if installed[m]] == [], f"[{profile.name}] has them"
    assert [m for m in PRESENT[profile.name] if not installed[m]] == [], f"[{profile.name}] lacks"


def test_agent_profile_has_no_server_and_runs_the_device_commands(
    agent_profile: Profile, tmp_path: Path
) -> None:
    _check_libraries(agent_profile)
    assert "agent" in agent_profile.doorwatch("--help").stdout
    for command in (["agent", "--help"], ["agent", "run", "--help"],
                    ["agent", "commission", "--help"], ["agent", "install-bundle", "--help"],
                    ["analyze", "--help"], ["sim", "--help"]):
        assert "Usage" in agent_profile.doorwatch(*command).stdout, command
    schema = json.loads(agent_profile.doorwatch("agent", "config-schema").stdout)
    assert "device_id" in json.dumps(schema)
    assert "Heartbeat" in agent_profile.doorwatch("schema").stdout
    # The other side's command says what is missing instead of a traceback.
    refused = agent_profile.doorwatch("server", "run", "-c", str(tmp_path / "none.toml"),
                                      check=False, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "needs the 'server' install profile" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_server_profile_has_no_opencv_and_runs_the_server_commands(
    server_profile: Profile, tmp_path: Path
) -> None:
    _check_libraries(server_profile)
    for command in (["server", "--help"], ["household", "--help"], ["device", "--help"],
                    ["incidents", "--help"], ["user", "--help"], ["broker", "--help"]):
        assert "Usage" in server_profile.doorwatch(*command).stdout, command
    config = tmp_path / "server.toml"
    config.write_text(tomli_w.dumps({"database_url": f"sqlite:///{tmp_path / 'server.db'}"}))
    server_profile.doorwatch("worker", "add", "Wang", "--url", "json://127.0.0.1:9/x",
                             "-c", str(config))
    listed = server_profile.doorwatch("worker", "list", "--json", "-c", str(config)).stdout
    assert json.loads(listed.splitlines()[0])["name"] == "Wang"
    refused = server_profile.doorwatch("analyze", "clip.mp4", "--scene", "s.toml", check=False,
                                       cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "needs the 'agent' install profile" in refused.stderr


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Background processes, stopped (then killed) at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _stored_events(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_agent_and_server_from_their_own_venvs_store_an_event_end_to_end(
    agent_profile: Profile, server_profile: Profile, mosquitto: Mosquitto, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    _profile_figures(agent_profile, server_profile)
    db = tmp_path / "server.db"
    config = tmp_path / "server.toml"
    config.write_text(tomli_w.dumps({
        "database_url": f"sqlite:///{db}", "data_dir": str(tmp_path / "server-data"),
        "instance": "profiles",
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port,
                 "password": mosquitto.broker.server_password,
                 "client_id": "doorwatch-server-profiles"},
    }))
    # The administrator provisions the device with the server's venv (credentials,
    # broker reload, registration, bundle); the installer installs the bundle with
    # the device's venv, exactly as the install guide says.
    bundle = tmp_path / "door-p1.bundle.json"
    server_profile.doorwatch("device", "provision", "--id", "door-p1", "--broker-dir",
                             str(mosquitto.broker.path), "--out", str(bundle),
                             "-c", str(config), cwd=tmp_path)
    device_dir = tmp_path / "device"
    agent_profile.doorwatch("agent", "install-bundle", str(bundle), "--config-dir",
                            str(device_dir / "etc"), "--data-dir", str(device_dir / "data"))
    (device_config,) = (device_dir / "etc").glob("*.toml")

    server_log = tmp_path / "server.log"
    processes.append(server_profile.popen("server", "run", "-c", str(config), log=server_log))
    assert wait_for_log(server_log, '"msg": "subscribed"', timeout=90), \
        server_log.read_text()[-3000:]
    agent_log = tmp_path / "agent.log"
    # An episode ends once the door stays shut door.quiet_s (5 s): openings 0.5 s apart
    # on average never let it, so the first event waited for the 60 s max_open_s cut.
    # 5 s apart, the first episode (seed 1) ends about 13 s after the agent starts.
    processes.append(agent_profile.popen(
        "agent", "run", "-c", str(device_config), "--simulate", "--scripted",
        "--mean-interval", "5", log=agent_log))

    def stored() -> bool:
        assert all(p.poll() is None for p in processes), (
            server_log.read_text()[-2000:] + agent_log.read_text()[-2000:])
        return _stored_events(db) > 0

    wait_until(stored, "the agent's first event stored by the server", 90, every=0.2,
               detail=lambda: server_log.read_text()[-2000:] + agent_log.read_text()[-2000:])
    assert _stored_events(db) > 0, server_log.read_text()[-2000:] + agent_log.read_text()[-2000:]
    with sqlite3.connect(db, timeout=10) as conn:
        (device,) = conn.execute("SELECT DISTINCT device_id FROM events").fetchone()
    assert device == "door-p1"

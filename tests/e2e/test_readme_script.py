"""The README's "Running the broker, the server and an agent separately" runs as written.

The shell block is extracted from README.md and run by bash as a script
(``set -e``: any failing command fails the test), with the ``server.toml``
block beside it. The only changes, listed in ``_SUBSTITUTIONS``: the system
paths and the ports go to private ones (a test may not write /etc or
/var/lib, nor take 1883/8883/8080 from the machine), and the broker's public
name becomes ``localhost`` (broker.example.org does not resolve here). The
environment stands in for what this machine lacks: the Pi's camera and reed
switch (``DOORWATCH_AGENT_SIMULATE``) and the default device configuration
file under /etc (``DOORWATCH_AGENT_CONFIG``).

It ends with the agent's events stored and visible: the commissioning event
and the agent's heartbeats in the server's database, and the aim picture on
the device's page in the dashboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from broker.mosquitto.runner import find_mosquitto
from ground.ports import free_ports
from tests.paths import REPO_ROOT
from tests.requirements import need
from tests.waiting import poll_until, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SECTION = "## Running the broker, the server and an agent separately"


def _blocks(language: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    for old, new in substitutions.items():
        text = text.replace(old, new)
    return text


def _pids_below(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def test_readme_runs_as_a_script(tmp_path: Path) -> None:
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    for tool in ("jq", "curl"):
        need(tool, any((Path(d) / tool).exists() for d in os.environ["PATH"].split(":")),
             f"{tool} is not installed (Debian: apt-get install {tool}); the README uses it")
    tls, loopback, http = free_ports(3)
    root = tmp_path / "root"
    substitutions = {
        "/var/lib/": f"{root}/var/lib/",
        "/etc/doorwatch": f"{root}/etc/doorwatch",
        "8883": str(tls),
        "1883": str(loopback),
        "8080": str(http),
        "broker.example.org": "localhost",
    }
    (shell,) = _blocks("sh")
    (toml,) = _blocks("toml")
    for old in substitutions:  # a stale substitution would hide a README change
        assert old in shell + toml, f"{old!r} is no longer in the README's section"
    work = tmp_path / "work"
    work.mkdir()
    (work / "server.toml").write_text(_substitute(toml, substitutions), encoding="utf-8")
    script = work / "separately.sh"
    script.write_text("set -euo pipefail\n" + _substitute(shell, substitutions),
                      encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "DOORWATCH_AGENT_SIMULATE": "1", "DOORWATCH_LANG": "en",
           "DOORWATCH_AGENT_CONFIG": f"{root}/etc/doorwatch/agent.toml"}
    env = {k: v for k, v in env.items() if not k.startswith(("DOORWATCH_SERVER__",
                                                              "DOORWATCH_AGENT__"))}
    log = tmp_path / "script.log"
    with log.open("wb") as out:
        script_process = subprocess.Popen(["bash", str(script)], cwd=work, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = script_process.wait(timeout=240)
        output = log.read_text(errors="replace")
        assert code == 0, output[-4000:]
        assert "All 6 checks passed" in output, output[-4000:]
        db = root / "var/lib/doorwatch-server/doorwatch.db"
        # The commissioning event is stored; the running agent's heartbeats keep arriving.
        def stored() -> tuple[int, int]:
            with sqlite3.connect(db) as conn:
                return (
                    conn.execute("SELECT COUNT(*) FROM events WHERE device_id = 'door-0101' "
                                 "AND kind = 'commissioning'").fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM devices WHERE device_id = 'door-0101' "
                                 "AND last_heartbeat_at IS NOT NULL").fetchone()[0])

        wait_until(lambda: stored() == (1, 1), "the commissioning event and a heartbeat stored",
                   60, every=0.5, detail=lambda: str(stored()))
        counts = stored()
        assert counts == (1, 1), counts
        # Visible: a dashboard user (as the README's server.toml says: doorwatch user add)
        # sees the device's aim picture.
        added = subprocess.run(
            ["doorwatch", "user", "add", "boss", "--role", "supervisor", "-c", "server.toml",
             "--password-stdin"], input="a-long-password-1\n", cwd=work, env=env,
            capture_output=True, text=True, timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        with httpx.Client(base_url=f"http://127.0.0.1:{http}") as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            cookie = page.headers["set-cookie"].split(";")[0]
            # The session cookie is Secure (browsers send it to 127.0.0.1 over HTTP; httpx
            # does not), so it goes back by hand.
            logged_in = client.post(
                "/login", headers={"cookie": cookie},
                data={"username": "boss", "password": "a-long-password-1",
                      "csrf_token": token.group(1)})
            assert logged_in.status_code == 303, logged_in.text
            cookie = logged_in.headers["set-cookie"].split(";")[0]
            device = client.get("/devices/door-0101", headers={"cookie": cookie})
            assert device.status_code == 200
            assert 'id="aim-picture"' in device.text
    finally:
        # The script's services (broker, server, agent) were started in its session.
        for pid in _pids_below(script_process.pid) | {script_process.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script_process.pid, signal.SIGTERM)
        if not poll_until(lambda: not _group_alive(script_process.pid), 20, every=0.2):
            os.killpg(script_process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

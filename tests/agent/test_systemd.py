"""Unit files verify cleanly, and the agent talks sd_notify from its event loop."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ground.sdnotify import ServiceNotifier, watchdog_pings
from tests.paths import REPO_ROOT
from tests.requirements import need

UNITS = ["doorwatch-agent.service", "doorwatch-server.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    need("systemd", tool is not None, "systemd-analyze is not installed")
    assert tool is not None
    # verify insists that ExecStart exists: point it at this checkout's interpreter.
    text = (REPO_ROOT / "systemd" / unit).read_text(encoding="utf-8")
    here = str(Path(sys.executable).parent / "doorwatch")
    text = text.replace("/opt/doorwatch/venv/bin/doorwatch", here)
    target = tmp_path / unit
    target.write_text(text, encoding="utf-8")
    result = subprocess.run([tool, "verify", str(target)], capture_output=True, text=True,
                            timeout=60, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints == [], result.stdout + result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_notify_watchdog_and_hardened(unit: str) -> None:
    text = (REPO_ROOT / "systemd" / unit).read_text(encoding="utf-8")
    for line in ("Type=notify", "Restart=always", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "User=doorwatch"):
        assert f"\n{line}\n" in text, line
    assert "\nWatchdogSec=" in text
    assert "\nReadWritePaths=/var/lib/" in text


async def test_watchdog_pings_reach_the_notify_socket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    healthy = [True]
    task = asyncio.create_task(watchdog_pings(ServiceNotifier(), status=lambda: "ok",
                                              healthy=lambda: healthy[0], interval_s=0.05))
    received: list[str] = []
    loop = asyncio.get_running_loop()
    while sum("WATCHDOG=1" in r for r in received) < 2:
        received.append((await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)).decode())
    healthy[0] = False
    # A window: a ping decided before the switch may still be on its way (every 0.05 s).
    await asyncio.sleep(0.2)
    while True:  # drain what was sent before the switch
        try:
            sock.recv(4096)
        except BlockingIOError:
            break
    # A window, not a wait: four ping intervals in which nothing may be sent.
    await asyncio.sleep(0.2)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)  # an unhealthy service gets no pings: systemd will restart it
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sock.close()
    assert received[0].startswith("READY=1")

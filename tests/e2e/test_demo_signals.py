"""``doorwatch demo`` takes its children with it on SIGINT, SIGTERM and SIGHUP.

The signal goes to the demo process alone (not its process group, as a
terminal's Ctrl-C would): Python's default for SIGTERM/SIGHUP used to kill the
demo at once and leave Mosquitto, the server and the agents running, with the
dashboard's port held.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from broker.mosquitto.runner import find_mosquitto
from tests.requirements import need
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_demo_stops_its_children_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        demo = subprocess.Popen(
            [sys.executable, "-m", "doorwatch", "demo", "--households", "2", "--http-port", "0",
             "--data-dir", str(tmp_path / "demo")],
            cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            assert demo.poll() is None, out.read_text()
            return "Press Ctrl-C" in out.read_text()

        wait_until(ready, "the demo's 'Press Ctrl-C' line", 90, every=0.1,
                   detail=lambda: out.read_text()[-3000:])
        text = out.read_text()
        assert "Press Ctrl-C" in text, text
        port = int(re.search(r"Dashboard: http://127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
        children = _descendants(demo.pid)
        names = {Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200]
                 for p in children if _alive(p)}
        assert any(b"mosquitto" in n for n in names), names
        assert sum(b"agent run" in n for n in names) == 2, names
        assert any(b"server run" in n for n in names), names
        assert not _port_free(port)
        os.kill(demo.pid, signum)
        demo.wait(timeout=60)
        survivors = [p for p in children if _alive(p)]
        assert not survivors, survivors
        assert _port_free(port)
    finally:
        # The demo ran in its own session: whatever is left of it goes (even when it is gone).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait()

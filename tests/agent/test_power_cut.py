"""A power cut, not a SIGKILL: the outbox, open episodes and armed flag survive it.

A killed process keeps what the kernel already had; a Pi losing power keeps
only what was fsynced. The agent's storage (tests/agent/powercut_writer.py,
the agent's own Outbox / episode store / DeviceState) runs on a FUSE file
system of ours (tests/agent/powercut_fs.py) that holds every unsynced write in
memory and loses it at the cut. The cut falls at many points of a stream of
door events — between a WAL write and its fsync, mid-checkpoint, between a
temporary file and its rename — and after each, the disk as a rebooted Pi
would find it is checked against what the agent had counted as stored:

* every event whose ``append`` returned is on disk unless its PUBACK came;
* the next seq is above every seq handed out (no seq is ever reused);
* an episode saved and not yet reported is still open, or its event is stored
  (never both, never neither); a reported episode is not open again;
* ``state.json`` is readable and holds the armed flag last set.

A control run with SQLite's ``synchronous=OFF`` must lose events on the same
file system, which shows the layer really drops unsynced data.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.episode_store import load_open_episodes
from agent.outbox import Outbox
from tests.requirements import need
from tests.waiting import wait_until

DEVICE = "door-pc"
EVENTS = 24
ROOT = Path(__file__).resolve().parents[2]


def _fuse_available() -> tuple[bool, str]:
    if not os.path.exists("/dev/fuse"):
        return False, "no /dev/fuse"
    if shutil.which("fusermount") is None and shutil.which("fusermount3") is None:
        return False, "no fusermount (apt install fuse3)"
    try:
        import fuse  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, OSError) as exc:  # fusepy raises OSError without libfuse.so.2
        return False, f"fusepy unusable ({exc}); pip install fusepy, apt install libfuse2"
    return True, ""


@pytest.fixture(scope="module")
def fuse_ok() -> None:
    ok, why = _fuse_available()
    need("fuse", ok, f"power-cut file system needs FUSE: {why}")


@dataclass
class Run:
    """What one writer run reported before the cut, and how many operations the FS saw."""

    reports: list[dict[str, object]] = field(default_factory=list)
    ops: int = 0
    backing: Path = Path()


def _unmount(mount: Path) -> None:
    tool = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    subprocess.run([tool, "-u", "-z", str(mount)], capture_output=True, check=False)


def _run(tmp: Path, name: str, cut_after: int | None, *, unsafe: bool = False) -> Run:
    backing, mount, count = tmp / f"{name}-disk", tmp / f"{name}-mnt", tmp / f"{name}-ops"
    backing.mkdir()
    mount.mkdir()
    command = [sys.executable, "-m", "tests.agent.powercut_fs", str(backing), str(mount),
               "--count-file", str(count)]
    if cut_after is not None:
        command += ["--cut-after", str(cut_after)]
    fs = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        def mounted() -> bool:
            if fs.poll() is not None:
                error = fs.stderr.read().decode() if fs.stderr else ""
                pytest.fail(f"FUSE layer failed: {error[-2000:]}")
            return os.path.ismount(mount)

        wait_until(mounted, "the FUSE layer mounted", 30, every=0.02)
        writer = [sys.executable, "-m", "tests.agent.powercut_writer", str(mount), str(EVENTS)]
        if unsafe:
            writer.append("--unsafe")
        done = subprocess.run(writer, cwd=ROOT, capture_output=True, timeout=240, check=False)
        if cut_after is None:
            assert done.returncode == 0, done.stderr.decode()[-2000:]
    finally:
        if cut_after is None or fs.poll() is None:
            _unmount(mount)  # an orderly unmount: the layer exits and records its count
        fs.wait(timeout=30)
        _unmount(mount)  # after a cut: clear the dead mount
    reports = []
    for line in done.stdout.decode().splitlines():
        try:
            reports.append(json.loads(line))
        except ValueError:
            break  # a line cut in half by the power cut
    return Run(reports, int(count.read_text() or 0) if count.exists() else 0, backing)


async def _reopened(db: Path) -> tuple[dict[int, bytes], int, set[str]]:
    """The outbox after the cut, as the agent reopens it: its device's records, the next
    seq it hands out and the open episodes."""
    outbox = await Outbox.connect(db)
    try:
        pending = {r.seq: r.payload for r in await outbox.pending(10_000, device_id=DEVICE)}
        new_seq = await outbox.append(DEVICE, "t", lambda s: b"{}")
        episodes = {e.key for e in await load_open_episodes(outbox)}
    finally:
        await outbox.close()
    return pending, new_seq, episodes


def _losses(run: Run) -> list[str]:
    """What the disk after the cut lacks of what the agent counted as stored."""
    stored = [int(str(r["stored"])) for r in run.reports if "stored" in r]
    acked = {int(s) for r in run.reports for s in r.get("acked", [])}  # type: ignore[attr-defined]
    saved = [str(r["episode_saved"]) for r in run.reports if "episode_saved" in r]
    closed = {str(r["episode_closed"]) for r in run.reports if "episode_closed" in r}
    armed = [r for r in run.reports if "armed" in r or "arming" in r]
    problems: list[str] = []
    db = run.backing / "outbox.db"
    if not db.exists():
        return [f"no outbox after the cut, {len(stored)} events reported stored"] if stored else []
    with sqlite3.connect(db) as check:
        verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        problems.append(f"outbox corrupt: {verdict}")
    pending, new_seq, episodes = asyncio.run(_reopened(db))
    missing = sorted(s for s in stored if s not in acked and s not in pending)
    if missing:
        problems.append(f"events counted as stored are gone: seq {missing}")
    top = max(stored, default=0)
    if new_seq <= top:
        problems.append(f"seq reused: next seq {new_seq} after {top} was handed out")
    reported_in = {json.loads(p).get("episode") for p in pending.values()
                   if p.startswith(b"{") and b"episode" in p}
    for key in saved:
        in_event = key.removeprefix("episode:") in reported_in
        if key in closed and key in episodes:
            problems.append(f"{key} reported and open again")
        elif key not in closed and key not in episodes and not in_event:
            problems.append(f"{key} lost: neither open nor in an event")
        if key in episodes and in_event:
            problems.append(f"{key} both open and reported")
    if armed:
        try:
            on_disk = json.loads((run.backing / "state.json").read_text(encoding="utf-8"))["armed"]
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"state.json unreadable after the cut: {exc!r}")
        else:
            last_done = next((r["armed"] for r in reversed(armed) if "armed" in r), None)
            allowed = {last_done, armed[-1].get("arming", last_done)}
            if on_disk not in allowed:
                problems.append(f"armed flag on disk {on_disk}, agent had set {last_done}")
    return problems


def _cut_points(total: int, count: int) -> list[int]:
    """``count`` operations spread over the whole stream, jittered with a fixed seed."""
    rng = random.Random(15)
    step = total / count
    return sorted({max(1, min(total, int(i * step + rng.random() * step))) for i in range(count)})


@pytest.mark.slow
def test_nothing_stored_is_lost_at_any_cut(fuse_ok: None, tmp_path: Path) -> None:
    whole = _run(tmp_path, "whole", None)
    assert whole.ops > 100, "the layer saw too few operations to cut anywhere interesting"
    assert any(r.get("done") for r in whole.reports)
    assert not _losses(whole)
    points = int(os.environ.get("DOORWATCH_POWERCUT_POINTS", "12"))
    failures: dict[int, list[str]] = {}
    reported = 0
    for cut in _cut_points(whole.ops, points):
        run = _run(tmp_path, f"cut{cut}", cut)
        reported += sum(1 for r in run.reports if "stored" in r)
        if problems := _losses(run):
            failures[cut] = problems
    assert not failures, f"of {whole.ops} operations, cuts that lost data: {failures}"
    assert reported > 0, "no cut fell after an event was stored: the test checked nothing"


@pytest.mark.slow
def test_the_layer_really_loses_unsynced_writes(fuse_ok: None, tmp_path: Path) -> None:
    # The same stream with SQLite's fsyncs turned off must lose stored events.
    whole = _run(tmp_path, "whole", None, unsafe=True)
    lost = 0
    for cut in _cut_points(whole.ops, 4)[1:]:
        run = _run(tmp_path, f"cut{cut}", cut, unsafe=True)
        lost += any("are gone" in p or "no outbox" in p for p in _losses(run))
    assert lost > 0, "with synchronous=OFF nothing was lost: the layer does not drop unsynced data"

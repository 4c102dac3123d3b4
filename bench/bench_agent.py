"""Agent footprint: CPU% and RSS of one ``doorwatch agent run`` process, idle and with motion.

Not a test (figures depend on the machine): run ``.venv/bin/python -m bench.bench_agent``;
the figures go to bench/results/agent.json.

One agent process runs in simulation (mock door, synthetic camera at the
configured 320x240 and fps, connected to a private Mosquitto) in two phases:

* idle: the door stays closed, the synthetic corridor is empty (the camera
  and analyzer still run on every frame);
* motion: the simulated household opens the door and people walk out, in
  and to the threshold back to back.

Each phase first settles (the background model learns, the first people
appear), then samples ``/proc/<pid>/stat`` (utime+stime ticks, all threads)
and ``/proc/<pid>/status`` (VmRSS) every second for ``--seconds``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, mosquitto, stop, write_result
from tests.conftest import doorwatch_process

_TICKS = os.sysconf("SC_CLK_TCK")
DEVICE = "bench-agent"


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (every thread), in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def rss_mib(pid: int) -> float:
    """Resident set size in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure(pid: int, seconds: float) -> dict[str, Any]:
    """Sample CPU and RSS once a second for ``seconds``."""
    rss: list[float] = []
    cpu: list[float] = []
    start_ticks, start = cpu_ticks(pid), time.monotonic()
    last_ticks, last = start_ticks, start
    while time.monotonic() - start < seconds:
        time.sleep(1.0)
        ticks, now = cpu_ticks(pid), time.monotonic()
        cpu.append(100.0 * (ticks - last_ticks) / _TICKS / (now - last))
        rss.append(rss_mib(pid))
        last_ticks, last = ticks, now
    total = 100.0 * (last_ticks - start_ticks) / _TICKS / (last - start)
    return {
        "seconds": round(last - start, 1),
        "cpu_percent_mean": round(total, 1),
        "cpu_percent_p95_1s": round(sorted(cpu)[int(0.95 * (len(cpu) - 1))], 1),
        "rss_mib_mean": round(statistics.fmean(rss), 1),
        "rss_mib_max": round(max(rss), 1),
    }


def _config(root: Path, port: int, fps: float) -> Path:
    path = root / "agent.toml"
    path.write_text(f"""
device_id = "{DEVICE}"
data_dir = "{root / 'agent-data'}"
heartbeat_interval_s = 30
[mqtt]
host = "127.0.0.1"
port = {port}
[camera]
width = 320
height = 240
fps = {fps}
[door]
quiet_s = 1.0
""", encoding="utf-8")
    return path


def run_phase(root: Path, port: int, password: str, *, fps: float, motion: bool,
              settle_s: float, seconds: float) -> dict[str, Any]:
    """Start one agent, let it settle, measure it, stop it."""
    config = _config(root, port, fps)
    # Motion: a person at the door ~4 of every ~9 s (walk 4 s, door open 5.6 s, then the
    # 1 s quiet time and a mean 3 s pause), so episodes end and get classified too.
    household = (["--mean-interval", "3", "--exit-probability", "0.4"] if motion
                 else ["--mean-interval", "1000000000"])
    log = root / f"agent-{'motion' if motion else 'idle'}.log"
    proc = doorwatch_process("agent", "run", "--simulate", "--config", str(config),
                             "--log-level", "INFO", *household, log=log,
                             env={"DOORWATCH_AGENT__MQTT__PASSWORD": password,
                                  "PYTHONPATH": str(REPO)})
    try:
        time.sleep(settle_s)
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited early; see {log}:\n{log.read_text()[-2000:]}")
        figures = measure(proc.pid, seconds)
    finally:
        stop(proc)
    episodes = log.read_text(errors="replace").count('"door episode"')
    return {**figures, "episodes_logged": episodes}


def main() -> None:
    """Measure both phases and write bench/results/agent.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per phase")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--fps", type=float, default=25.0, help="camera fps (config default 25)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp, \
            mosquitto(Path(tmp), [DEVICE]) as broker:
        root = Path(tmp)
        results: dict[str, Any] = {}
        for phase, motion in (("idle", False), ("motion", True)):
            phase_root = root / phase
            phase_root.mkdir()
            results[phase] = run_phase(phase_root, broker.port, broker.passwords[DEVICE],
                                       fps=args.fps, motion=motion, settle_s=args.settle,
                                       seconds=args.seconds)
            print(phase, results[phase], file=sys.stderr)
    path = write_result("agent", {
        "what": "one `doorwatch agent run --simulate` process: synthetic camera 320x240 at "
                f"{args.fps:g} fps, real analyzer, mock door, private Mosquitto; CPU% of one "
                "core (100 = one core busy) from /proc/<pid>/stat, RSS from /proc/<pid>/status",
        "fps": args.fps, "size": [320, 240], **results})
    print(path)


if __name__ == "__main__":
    main()

"""`make demo` keeps working: the whole system runs, breaches reach the workers, nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from broker.mosquitto.runner import find_mosquitto
from tests.requirements import need

REPO = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, *extra: str) -> tuple[dict[str, int], str]:
    proc = subprocess.run(
        # --http-port 0: never the developer's 8080, nor the other demo test's (tests may
        # run in parallel; "8080 unless taken" races when two demos check at once).
        [sys.executable, "-m", "doorwatch", "demo", "--for", "30", "--mean-interval", "2",
         "--http-port", "0", "--data-dir", str(tmp_path / "demo"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1].removeprefix("summary: ")), proc.stdout


def _check(summary: dict[str, int], stdout: str) -> None:
    assert summary["events_sent"] > 0
    assert summary["events_stored"] == summary["events_sent"]
    assert summary["events_pending_on_devices"] == 0
    assert summary["rejected"] == 0
    assert summary["incidents"] >= 1
    assert summary["fever_incidents"] == 1  # the seeded follow-up found one
    assert summary["checkins_settled"] == 1  # the seeded check-in: present, or missed
    assert summary["notifications_delivered"] >= 1
    assert "Notification delivered to" in stdout
    assert "【发热提醒】张三家：张女士 38.1 °C" in stdout  # the fever reached its worker


@pytest.mark.slow
def test_demo_on_the_embedded_broker(tmp_path: Path) -> None:
    _check(*_demo(tmp_path, "--embedded-broker"))


@pytest.mark.slow
@pytest.mark.broker
def test_demo_on_mosquitto_with_tls(tmp_path: Path) -> None:
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    summary, stdout = _demo(tmp_path)
    assert "devices over TLS" in stdout
    _check(summary, stdout)

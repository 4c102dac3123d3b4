"""``python -m bench``'s command line: --help lists the benchmarks and runs nothing; a name
runs that one; a wrong name is refused. Nothing here runs a benchmark (timings live in
bench/, not in tests)."""

from __future__ import annotations

import subprocess
import sys

from bench.__main__ import BENCHMARKS
from tests.paths import REPO_ROOT as REPO


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


def test_help_lists_every_benchmark_and_runs_none() -> None:
    table = (REPO / "BENCHMARKS.md").read_bytes()
    done = _bench("--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    for name in BENCHMARKS:
        assert f"\n  {name} " in done.stdout, name
    assert "python -m bench ingest" in done.stdout  # how to run one
    assert "==" not in done.stdout  # no benchmark started
    assert (REPO / "BENCHMARKS.md").read_bytes() == table


def test_an_unknown_benchmark_is_refused_before_anything_runs() -> None:
    table = (REPO / "BENCHMARKS.md").read_bytes()
    done = _bench("ingest", "nosuch")
    assert done.returncode == 2
    assert "nosuch" in done.stderr
    assert "==" not in done.stdout
    assert (REPO / "BENCHMARKS.md").read_bytes() == table


def test_names_choose_the_benchmarks_in_the_order_given() -> None:
    from bench.__main__ import parse_args

    assert parse_args([]).names == list(BENCHMARKS)
    assert parse_args(["latency", "ingest"]).names == ["latency", "ingest"]
    assert parse_args(["--table"]).table
    assert not parse_args(["ingest"]).table

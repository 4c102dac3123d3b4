"""A benchmark run alone rewrites only its own marked block of BENCHMARKS.md
(``python -m bench frigate`` used to rewrite the whole file with its rows alone)."""

from __future__ import annotations

from pathlib import Path

from bench import write_block
from bench.bench_frigate import BEGIN, END, section


def test_write_block_replaces_only_what_is_between_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# head\n\n| kept | row |\n\n{BEGIN}\nold figures\n{END}\n\nnotes by hand\n")
    write_block(path, [BEGIN, "new figures", END], BEGIN, END)
    assert path.read_text() == (f"# head\n\n| kept | row |\n\n{BEGIN}\nnew figures\n{END}\n\n"
                                "notes by hand\n")


def test_write_block_appends_a_block_the_file_lacks(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# head\n")
    write_block(path, [BEGIN, "figures", END], BEGIN, END)
    assert path.read_text() == f"# head\n\n{BEGIN}\nfigures\n{END}\n"


def test_the_frigate_block_holds_its_rows_between_its_markers() -> None:
    row = {"input": "overhead 320x240", "doorwatch_fps": 900.0, "frigate_fps": 1000.0,
           "ratio": 0.9, "doorwatch_cpu_fps": 1100.0, "frigate_cpu_fps": 1000.0,
           "cpu_ratio": 1.1}
    calls = {"rows": [{"input": "overhead 320x240", "frames": "100-300",
                       "doorwatch_instr": 5_000_000, "frigate_instr": 4_000_000}]}
    lines = section({"rows": [row]}, calls)
    assert lines[0] == BEGIN
    assert lines[-1] == END
    text = "\n".join(lines)
    assert "900 / 1000 = 0.90x" in text
    assert "1100 / 1000 = 1.10x" in text
    assert "5.00 / 4.00 M" in text
    skipped = "\n".join(section({"skipped": "no checkout"}))
    assert "not measured: no checkout" in skipped

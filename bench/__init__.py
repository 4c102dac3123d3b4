"""Benchmarks: ``make bench`` runs them all and writes bench/results/*.json and BENCHMARKS.md."""

from pathlib import Path


def write_block(path: Path, lines: list[str], begin: str, end: str) -> None:
    """Replace the part of ``path`` from the ``begin`` marker to the ``end`` marker
    by ``lines`` (which hold both markers), or append them if it has none: a
    benchmark run alone rewrites only its own figures, not the whole file."""
    text = path.read_text() if path.exists() else ""
    block = "\n".join(lines)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)

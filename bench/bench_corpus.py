"""Detection quality on every labelled clip: tuning and validation splits side by side.

Inputs: ../shared/data/labels.json (with tests/corpus/shared_clips.json for its
viewpoints, scenes and split) and tests/corpus/labels.json. Same figures as
``doorwatch eval`` over both (see sensors/corpus.py): a clip's video is looked
for beside its labels file, then in ../shared/data/corpus/; a clip found in
neither is left out, printed, and named in the JSON and in the BENCHMARKS.md
section (so a figure over fewer clips never passes for the whole corpus). Results go to
``bench/results/corpus.json``; the section between the markers in
BENCHMARKS.md is rewritten from them (``python -m bench`` renders the same
section from the JSON when it rewrites the whole file).

Run: ``.venv/bin/python bench/bench_corpus.py``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import write_block  # noqa: E402
from sensors.corpus import collect, evaluate_corpus, load_meta, report  # noqa: E402

SHARED = REPO / ".." / "shared" / "data"
CORPUS = REPO / "tests" / "corpus"
RESULT = REPO / "bench" / "results" / "corpus.json"
BEGIN = "<!-- bench_corpus: begin -->"
END = "<!-- bench_corpus: end -->"


def run() -> dict[str, Any]:
    """Evaluate every clip and return the figures as plain data."""
    files = [CORPUS / "labels.json"]
    if (SHARED / "labels.json").exists():
        files.insert(0, SHARED / "labels.json")
    collected = collect(files, load_meta(CORPUS / "shared_clips.json"))
    for gone in collected.missing:
        print(gone.reason, file=sys.stderr)
    rep = report(evaluate_corpus(collected.clips), collected.missing)

    def group(g: Any) -> dict[str, Any]:
        s = g.score
        return {"name": g.name, "clips": g.clips, "labels": g.labels, "tp": s.tp, "fp": s.fp,
                "fn": s.fn, "precision": round(s.precision, 3), "recall": round(s.recall, 3),
                "f1": round(s.f1, 3), "confident_precision": round(g.confident.precision, 3),
                "max_delay_s": g.max_delay_s, "late": g.late}

    shared = SHARED.resolve()

    def place(video: Path) -> str:
        # Where a clip's video was read: the shared folder, or a local copy (not yet shared).
        folder = video.resolve().parent
        return "../shared/data" + str(folder)[len(str(shared)):] if folder.is_relative_to(
            shared) else str(folder)

    return {
        "inputs": [("../shared/data" if f.parent == SHARED else "tests/corpus") + "/labels.json"
                   for f in files],
        "videos": {c.name: place(c.video) for c in collected.clips},
        "splits": [group(g) for g in rep.splits],
        "viewpoints": [group(g) for g in rep.viewpoints],
        "hold_out": [{"scene": h.scene_id, "split": h.split, "f1": round(h.held_out.f1, 3),
                      "rest_f1": round(h.rest.f1, 3)} for h in rep.hold_out],
        "macro_f1": rep.macro_f1,
        "worst_scene": rep.worst_scene,
        "worst_f1": rep.worst_f1,
        "left_out": [{"clip": g.name, "reason": g.reason} for g in rep.left_out],
    }


def section(data: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section for these figures (tuning beside validation)."""
    splits = {g["name"]: g for g in data["splits"]}
    views = sorted({g["name"].split("/", 1)[1] for g in data["viewpoints"]})
    by_name = {g["name"]: g for g in data["viewpoints"]}

    def cell(g: dict[str, Any] | None) -> str:
        if g is None:
            return "no clips"
        return (f"F1 {g['f1']:.3f} (P {g['precision']:.3f} R {g['recall']:.3f}; "
                f"{g['labels']} crossings, {g['clips']} clips)")

    lines = [
        BEGIN,
        "## Detection on labelled clips (`bench/bench_corpus.py`)",
        "",
        "Splits and viewpoints as declared in tests/corpus/README.md; a passage matches a "
        "label of the same direction within 1 s.",
        "",
        "| | tuning split | validation split | target (validation) |",
        "|---|---|---|---|",
        f"| all viewpoints | {cell(splits.get('tuning'))} | {cell(splits.get('validation'))} "
        "| F1 >= 0.95, P >= 0.95 |",
    ]
    for view in views:
        lines.append(f"| {view} | {cell(by_name.get(f'tuning/{view}'))} | "
                     f"{cell(by_name.get(f'validation/{view}'))} | F1 >= 0.90 |")
    for name in ("tuning", "validation"):
        g = splits.get(name)
        if g is not None:
            lines.append(f"| {name}: precision of confident passages / largest report delay / "
                         f"passages later than 1 s | {g['confident_precision']:.3f} / "
                         f"{g['max_delay_s']:.2f} s / {g['late']} | | delay <= 1 s |")
    held = ", ".join(f"{h['scene']} {h['f1']:.3f} (rest {h['rest_f1']:.3f})"
                     for h in data["hold_out"])
    lines += [
        "",
        f"Each scene held out (its F1, the other scenes pooled): {held}; macro F1 "
        f"{data['macro_f1']:.3f}, worst {data['worst_scene']} {data['worst_f1']:.3f}.",
    ]
    local = sorted({p for p in data.get("videos", {}).values()
                    if not p.startswith("../shared/data")})
    if local:
        names = [n for n, p in data["videos"].items() if p in local]
        lines += ["", f"Videos of {len(names)} clips read from {', '.join(local)} "
                      f"(`DOORWATCH_CORPUS_DIR`): they are not under ../shared/data/corpus/ "
                      f"yet (fetched from other repositories; sources, licences and hashes in "
                      f"tests/corpus/README.md): {', '.join(sorted(names))}."]
    left_out = data.get("left_out", [])
    if left_out:
        lines += ["", f"Left out of these figures (video missing): "
                      f"{', '.join(g['clip'] for g in left_out)}."]
    lines.append(END)
    return lines


def write_section(path: Path, lines: list[str]) -> None:
    """Replace the marked section of ``path`` (or append it)."""
    write_block(path, lines, BEGIN, END)


def main() -> None:
    """Evaluate, store the JSON and rewrite the BENCHMARKS.md section."""
    data = run()
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(data, indent=2))
    lines = section(data)
    write_section(REPO / "BENCHMARKS.md", lines)
    print("\n".join(lines))
    print(f"written to {RESULT} and BENCHMARKS.md")


if __name__ == "__main__":
    main()

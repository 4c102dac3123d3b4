"""``doorwatch analyze`` and ``doorwatch eval``.

Plain functions with typer-annotated parameters; the root CLI registers them.
OpenCV and numpy are imported inside the commands so ``doorwatch --help``
stays fast on a Pi.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sensors.analyzer import DoorwayAnalyzer, Passage
    from sensors.frames import Frame

__all__ = ["analyze_command", "eval_command"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def analyze_command(
    video: Annotated[Path, typer.Argument(help="Video file (or camera index / URL) to analyse.")],
    scene: Annotated[
        Path, typer.Option("--scene", help="TOML file with threshold and inside_point.")
    ],
    annotate: Annotated[
        Path | None,
        typer.Option("--annotate", help="Write the video with line, tracks and decisions drawn."),
    ] = None,
) -> None:
    """Analyse a recording: one JSON line per passage on stdout, then a summary line."""
    from firmware_config.scene import load_scene
    from ground.errors import DoorwatchError
    from sensors.analyzer import DoorwayAnalyzer
    from sensors.source_opencv import OpenCVSource

    try:
        the_scene = load_scene(scene)
        source = OpenCVSource(video, keep_color=annotate is not None)
    except DoorwatchError as exc:
        raise _fail(str(exc)) from exc
    analyzer = DoorwayAnalyzer(the_scene, source.fps)
    writer: Any = None
    busy = 0.0
    passages: list[Passage] = []
    total = _frame_count(video)
    with source, typer.progressbar(length=total, label="analysing", file=sys.stderr) as bar:
        while (frame := source.read()) is not None:
            start = time.perf_counter()
            found = analyzer.feed(frame)
            busy += time.perf_counter() - start
            for p in found:
                typer.echo(p.model_dump_json())
            passages += found
            if annotate is not None:
                writer = _annotate(writer, annotate, frame, analyzer, passages, source.fps)
            bar.update(1)
    for p in analyzer.finish():
        typer.echo(p.model_dump_json())
        passages.append(p)
    if writer is not None:
        writer.release()
    summary = {
        "frames": analyzer.frames,
        "analysis_fps": round(analyzer.frames / busy, 1) if busy > 0 else 0.0,
        "passages": len(passages),
        "out": sum(p.direction == "out" for p in passages),
        "in": sum(p.direction == "in" for p in passages),
        "handovers": sum(s.handover for s in analyzer.summaries),
        "tracks": [s.model_dump() for s in analyzer.summaries],
    }
    typer.echo(json.dumps({"summary": summary}))


def _frame_count(video: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    # MPEG-1 streams misreport their length; the bar is a hint, never a limit.
    return max(count, 1)


def _annotate(
    writer: Any,
    path: Path,
    frame: Frame,
    analyzer: DoorwayAnalyzer,
    passages: list[Passage],
    fps: float,
) -> Any:
    import cv2

    image = frame.color if frame.color is not None else cv2.cvtColor(frame.gray, cv2.COLOR_GRAY2BGR)
    image = image.copy()
    h, w = image.shape[:2]
    if writer is None:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    (x1, y1), (x2, y2) = analyzer.scene.threshold
    cv2.line(image, (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h)), (0, 255, 255), 2)
    px, py = analyzer.scene.inside_point
    cv2.circle(image, (int(px * w), int(py * h)), 4, (0, 255, 0), -1)
    s = analyzer.scale
    for t in analyzer.tracks:
        x, y, bw, bh = (v / s for v in t.box)
        cv2.rectangle(image, (int(x), int(y)), (int(x + bw), int(y + bh)), (255, 128, 0), 1)
        cv2.putText(image, str(t.id), (int(x), int(y) - 2), 0, 0.4, (255, 128, 0), 1)
    recent = [p for p in passages if frame.index - p.frame < 2 * fps]
    for i, p in enumerate(recent):
        text = f"{p.direction.upper()} #{p.track}"
        colour = (0, 0, 255) if p.direction == "out" else (0, 200, 0)
        cv2.putText(image, text, (8, 20 + 18 * i), 0, 0.6, colour, 2)
    writer.write(image)
    return writer


def eval_command(
    labels: Annotated[list[Path], typer.Argument(
        help="One or more labels.json files; each clip's video is looked for in videos/ "
             "beside its file, then in the --corpus-dir folders, then in "
             "../shared/data/corpus/ beside the checkout.")],
    meta: Annotated[Path | None, typer.Option(
        "--meta", help="Viewpoint/scene/split of clips whose labels file lacks them "
                       "(tests/corpus/shared_clips.json for ../shared/data).")] = None,
    corpus_dir: Annotated[list[Path] | None, typer.Option(
        "--corpus-dir", envvar="DOORWATCH_CORPUS_DIR",
        help="Folder(s) with corpus videos not (yet) under ../shared/data/corpus/, e.g. a "
             "local copy of fetched clips; repeat the option, or separate folders with "
             "the path separator in DOORWATCH_CORPUS_DIR.")] = None,
    split: Annotated[str | None, typer.Option(
        "--split", help="Score only the clips of this split (tuning or validation): tune with "
                        "--split tuning so validation results are never seen while tuning.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Score the analyzer on labelled clips: per clip, split, viewpoint, and scene held out."""
    import os

    from ground.errors import DoorwatchError
    from sensors.corpus import collect, evaluate_corpus, load_meta, report, side_by_side

    # typer hands an environment value over as one path: split it like PATH.
    dirs = [Path(part) for d in corpus_dir or [] for part in str(d).split(os.pathsep) if part]
    try:
        collected = collect(labels, load_meta(meta) if meta else None, corpus_dirs=dirs)
    except DoorwatchError as exc:
        raise _fail(str(exc)) from exc
    if split not in (None, "tuning", "validation"):
        raise _fail(f"--split must be tuning or validation, not {split!r}")
    for gone in collected.missing:
        typer.echo(gone.reason, err=True)
    clips = [c for c in collected.clips if split is None or c.split == split]
    if not clips:
        raise _fail("no clip to evaluate: the video of every listed clip is missing")
    total_frames = sum(c.labels.frames or 0 for c in clips) or 1
    with typer.progressbar(length=total_frames, label="evaluating", file=sys.stderr) as bar:
        try:
            results = evaluate_corpus(clips, progress=bar.update)
        except DoorwatchError as exc:
            raise _fail(str(exc)) from exc
    rep = report(results, collected.missing)
    if as_json:
        typer.echo(rep.model_dump_json(indent=2))
        return
    head = f"{'tp':>3} {'fp':>3} {'fn':>3} {'P':>6} {'R':>6} {'F1':>6}"

    def row(name: str, sc: Any, extra: str = "") -> str:
        return (f"{name:44} {sc.tp:3d} {sc.fp:3d} {sc.fn:3d} {sc.precision:6.3f} "
                f"{sc.recall:6.3f} {sc.f1:6.3f}{extra}")

    typer.echo(f"{'clip [split/viewpoint]':44} {head} {'fps':>7}")
    for clip, r in results:
        typer.echo(row(f"{clip.name} [{clip.split}/{clip.viewpoint}]"[:44], r.score,
                       f" {r.analysis_fps:7.0f}"))
    typer.echo(f"\n{'split / viewpoint':44} {head} {'P>=0.5':>6} {'delay':>6} {'>1s':>4}")
    for group in (*rep.splits, *rep.viewpoints):
        typer.echo(row(f"{group.name} ({group.clips} clips, {group.labels} labels)", group.score,
                       f" {group.confident.precision:6.3f} {group.max_delay_s:5.2f}s"
                       f" {group.late:4d}"))
    def cell(group: Any) -> str:
        if group is None:
            return f"{'-':>26}"
        sc = group.score
        return f"{sc.f1:6.3f} {sc.precision:6.3f} {sc.recall:6.3f} {group.labels:5d}"

    typer.echo(f"\n{'viewpoint':12} {'tuning: F1      P      R  n':>26}   "
               f"{'validation: F1      P      R  n':>30}")
    for view, tuning, validation in side_by_side(rep):
        typer.echo(f"{view:12} {cell(tuning)}   {cell(validation):>30}")
    typer.echo(f"\n{'scene held out (rest pooled)':44} {head} {'rest F1':>7}")
    for h in rep.hold_out:
        typer.echo(row(f"{h.scene_id} [{h.split}]"[:44], h.held_out, f" {h.rest.f1:7.3f}"))
    typer.echo(f"leave-one-scene-out: macro F1 {rep.macro_f1:.3f}, worst scene "
               f"{rep.worst_scene} F1 {rep.worst_f1:.3f}")
    if collected.missing:
        typer.echo(f"{len(collected.missing)} clip(s) left out for want of their video: "
                   + ", ".join(g.name for g in collected.missing))

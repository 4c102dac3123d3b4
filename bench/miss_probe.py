"""Why a labelled crossing was missed: what the tracker saw near its frame.

Runs the analyzer over clips of a labels file, recording per frame every
track's floor point against the line (distance in margins, side, pending
crossing, shared / fragment, one person's size known) and every attempt to
report a crossing with the reason it was turned down. For each label that no
passage matched it prints the tracks that were near the line around the
labelled frame, so the cause can be classed (no blob, blob too small, track
lost, side never decided, report held back, duplicate...).

    DOORWATCH_CORPUS_DIR=/work/corpus/videos python bench/miss_probe.py \
        tests/corpus/labels.json --clip escalator_landing.mp4 [--all] [--around 30]

A tool for looking at failures; nothing in the product imports it.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensors.analyzer import DoorwayAnalyzer, Passage, _LineState
from sensors.evaluate import ClipLabels, LabelFile, _scene_without_description, match
from sensors.frames import Frame
from sensors.source_opencv import OpenCVSource
from sensors.tracking import Track


@dataclass
class Row:
    """One track on one frame."""

    frame: int
    track: int
    cx: float
    cy: float
    w: float
    h: float
    d: float
    margin: float
    side: str
    pending: str
    shared: bool
    person: bool
    count: int
    along: float
    depth: float
    blob_area: float


@dataclass
class Probe:
    """Everything recorded over one clip."""

    rows: list[Row] = field(default_factory=list)
    emits: list[tuple[int, int, str, str]] = field(default_factory=list)
    blobs: dict[int, list[tuple[float, float, float, float, float]]] = field(default_factory=dict)


class ProbedAnalyzer(DoorwayAnalyzer):
    """The analyzer, recording what it saw and decided."""

    probe: Probe

    def _observe(self, track: Track, frame: Frame) -> list[Passage]:
        found = super()._observe(track, frame)
        state = self._states.get(track.id)
        if state is None or not track.history or track.history[-1][0] != frame.index:
            return found
        assert self._line is not None
        assert self._people is not None
        _, cx, cy, w, h = track.history[-1]
        y = cy + h / 2.0 - self._anchor_probe(track, state) * h
        d = self._line.signed_distance(cx, y)
        person = self._people.at(y)
        reference = person.h if person is not None else self.config.unknown_reference * h
        margin = max(self.config.min_margin_px, self.config.margin_fraction * reference)
        p = state.pending
        self.probe.rows.append(Row(
            frame=frame.index, track=track.id, cx=cx, cy=cy, w=w, h=h, d=d, margin=margin,
            side=state.side, pending="" if p is None else f"{p.side}@{p.frame}",
            shared=track.shared, person=person is not None, count=state.count,
            along=self._line.along(cx, y), depth=state.depth,
            blob_area=track.blob.area if track.blob is not None else 0.0))
        return found

    def _anchor_probe(self, track: Track, state: _LineState) -> float:
        # _anchor updates the elongation average; read it without moving it.
        saved = state.elongation
        value = self._anchor(track)
        state.elongation = saved
        return value

    def _emit(self, track: Track, state: _LineState, ending: bool = False) -> list[Passage]:
        pending = state.pending
        reason = "?"
        if pending is None:
            reason = "no pending"
        elif not pending.confident:
            reason = f"not confident (along {pending.along:.2f})"
        elif not self._tracker.is_confirmed(track):
            reason = "unconfirmed"
        elif not self._walked_itself(track, state):
            reason = "not walked itself"
        elif (pending.came_from < self.config.origin_depth and not self._through(state, pending)
              and not self._vouched_peek(pending)):
            reason = (f"shallow origin (came_from {pending.came_from:.2f}, depth "
                      f"{state.depth:.2f}, edge_born {state.edge_born}, passages "
                      f"{state.passages}, origin {state.origin})")
        found = super()._emit(track, state, ending)
        if pending is not None:
            if found:
                reason = f"reported x{len(found)}"
            elif reason == "?":
                reason = "duplicate or person gate"
            self.probe.emits.append((self.frames, track.id, f"{pending.side}@{pending.frame}",
                                     reason))
        return found

    def _vouched_peek(self, pending: Any) -> bool:
        # _vouched marks the state it used; peek without marking.
        marks = [(s, s.vouched) for s in [*self._states.values(), *self._vanished]]
        ok = self._vouched(pending)
        for s, v in marks:
            s.vouched = v
        return ok

    def feed(self, frame: Frame) -> list[Passage]:
        found = super().feed(frame)
        self.probe.blobs[frame.index] = [(b.x, b.y, b.w, b.h, b.area) for b in self.blobs]
        return found


def _find(name: str, labels_path: Path) -> Path:
    places = [labels_path.parent / "videos"]
    places += [Path(p) for p in os.environ.get("DOORWATCH_CORPUS_DIR", "").split(os.pathsep) if p]
    places += [labels_path.parent.parent / "data" / "corpus", Path("../shared/data/corpus"),
               labels_path.parent / "videos"]
    for place in places:
        if (place / name).exists():
            return place / name
    raise SystemExit(f"{name} not found")


def run(video: Path, clip: ClipLabels) -> tuple[list[Passage], Probe, ProbedAnalyzer]:
    """Analyse one clip with recording on."""
    analyzer = ProbedAnalyzer(_scene_without_description(clip.scene), clip.fps)
    analyzer.probe = Probe()
    passages: list[Passage] = []
    with OpenCVSource(video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            passages += analyzer.feed(frame)
    passages += analyzer.finish()
    passages.sort(key=lambda p: p.frame)
    return passages, analyzer.probe, analyzer


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("labels", type=Path)
    parser.add_argument("--clip", action="append", default=[])
    parser.add_argument("--around", type=float, default=1.0, help="seconds around the label")
    parser.add_argument("--all", action="store_true", help="show matched labels too")
    parser.add_argument("--every", type=int, default=2, help="print every n-th frame")
    args = parser.parse_args()
    labels = LabelFile.model_validate(json.loads(args.labels.read_text()))
    for name, clip in labels.clips.items():
        if args.clip and name not in args.clip:
            continue
        passages, probe, analyzer = run(_find(name, args.labels), clip)
        score = match(passages, clip.events, clip.fps)
        print(f"== {name}: tp {score.tp} fp {score.fp} fn {score.fn}; view slope "
              f"{analyzer.view_slope}")
        for p in passages:
            print(f"   passage {p.direction} @{p.frame} track {p.track} conf {p.confidence}")
        for e in probe.emits:
            print(f"   emit at {e[0]} track {e[1]} {e[2]}: {e[3]}")
        tol = clip.fps
        for lab in clip.events:
            hit = [p for p in passages
                   if p.direction == lab.direction and abs(p.frame - lab.frame) <= tol]
            if hit and not args.all:
                continue
            print(f"-- label {lab.direction} @{lab.frame} {'HIT' if hit else 'MISS'}"
                  f"{' (ambiguous)' if lab.ambiguous else ''}: {lab.note[:90]}")
            lo, hi = lab.frame - args.around * clip.fps, lab.frame + args.around * clip.fps
            rows = [r for r in probe.rows if lo <= r.frame <= hi]
            for tid in sorted({r.track for r in rows}):
                mine = [r for r in rows if r.track == tid]
                if min(abs(r.d / r.margin) for r in mine) > 8:
                    continue
                print(f"   track {tid}: frames {mine[0].frame}-{mine[-1].frame}")
                for r in mine[:: args.every]:
                    print(f"     {r.frame:5d} c=({r.cx:5.1f},{r.cy:5.1f}) {r.w:4.0f}x{r.h:<4.0f}"
                          f" a={r.blob_area:6.0f} d/m={r.d / r.margin:6.2f} m={r.margin:4.1f}"
                          f" al={r.along:5.2f} {r.side:8s} {r.pending:14s}"
                          f"{' shared' if r.shared else ''}{' P' if r.person else ''}"
                          f" n={r.count} dep={r.depth:.1f}")


if __name__ == "__main__":
    main()

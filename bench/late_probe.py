"""Why a passage was reported late: what held each report back.

Runs the analyzer over the tuning clips of one or more labels files and, for
every passage, records the frame ``feed`` (or ``finish``) returned it on, the
path that reported it (settled on the new side, settled after falling back
into the band, its track lost (coasting) or ending, an opposite-crossing swap,
a recount) and,
for every frame between the crossing's decision and its report, what kept
the pending crossing waiting (in the band, back on the old side, coasting,
settling, not walked itself, a shallow origin still proving itself). A
passage's delay is measured both from its own dating (``doorwatch eval``'s
figure) and from the label it matched (the physical crossing).

    DOORWATCH_CORPUS_DIR=/work/corpus/videos python -m bench.late_probe \
        ../shared/data/labels.json tests/corpus/labels.json \
        --meta tests/corpus/shared_clips.json [--all] [--json OUT]

Tuning split only (clips whose labels or meta say ``split: tuning``). A tool
for looking at failures; nothing in the product imports it.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.miss_probe import _find
from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer, Passage, _LineState
from sensors.evaluate import ClipLabels, LabelFile, _scene_without_description
from sensors.frames import Frame
from sensors.source_opencv import OpenCVSource
from sensors.tracking import Track


@dataclass
class Report:
    """One reported passage and how it came."""

    passage: Passage
    at: int
    path: str
    decided: int | None = None
    waits: Counter[str] = field(default_factory=Counter)


class LateAnalyzer(DoorwayAnalyzer):
    """The analyzer, recording the path of every report and what held pending ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[Report] = []
        # Per track: the pending crossing's decision frame and what held it each frame.
        self.waits: dict[int, tuple[int, Counter[str]]] = {}
        self._path = "?"
        self._frame = Frame(index=0, t=0.0, gray=None)  # type: ignore[arg-type]

    def _hold(self, track: Track, state: _LineState, frame: Frame) -> str:
        """What keeps ``state.pending`` waiting on this frame."""
        assert self._line is not None
        assert self._people is not None
        pending = state.pending
        assert pending is not None
        if not track.history or track.history[-1][0] != frame.index:
            return "coasting"
        _, cx, cy, _, h = track.history[-1]
        saved = state.elongation
        y = cy + h / 2.0 - self._anchor(track) * h
        state.elongation = saved
        d = self._line.signed_distance(cx, y)
        person = self._people.at(y)
        reference = person.h if person is not None else self.config.unknown_reference * h
        margin = max(self.config.min_margin_px, self.config.margin_fraction * reference)
        if abs(d) <= margin:
            if not self._walked_itself(track, state):
                return "band+not-walked"
            if frame.index - pending.decided < self.config.band_settle_time * self.fps:
                return "band"
            return "band-other"
        if state.against:
            return "against"
        settle = self.config.band_settle_time if pending.jumped else self.config.settle_time
        if frame.index - pending.decided < settle * self.fps:
            return "settle-jump" if pending.jumped else "settle"
        if not self._walked_itself(track, state):
            return "not-walked"
        if self._shallow(state, pending):
            return "shallow"
        return "other"

    def _observe(self, track: Track, frame: Frame) -> list[Passage]:
        self._path = "settle"
        found = super()._observe(track, frame)
        self._tag(found, track.id, frame.index)
        state = self._states.get(track.id)
        if state is not None and state.pending is not None:
            decided = state.pending.decided
            entry = self.waits.get(track.id)
            if entry is None or entry[0] != decided:
                entry = self.waits[track.id] = (decided, Counter())
            if frame.index > decided:
                entry[1][self._hold(track, state, frame)] += 1
        return found

    def _coasting(self, track: Track, frame: Frame) -> list[Passage]:
        found = super()._coasting(track, frame)
        self._path = "coast"
        return found

    def _swapped(self, *args: Any, **kwargs: Any) -> list[Passage]:
        found = super()._swapped(*args, **kwargs)
        self._path = "swap"
        return found

    def _emit(self, track: Track, state: _LineState, ending: bool = False) -> list[Passage]:
        if not ending and self._path == "settle" and state.pending is not None:
            # Reported from the band (``band_settle_time``) rather than from the new side?
            where = self._hold(track, state, self._frame)
            self._path = "band" if where.startswith("band") else "settle"
        return super()._emit(track, state, ending)

    def feed(self, frame: Frame) -> list[Passage]:
        self._frame = frame
        return super().feed(frame)

    def _close(self, track: Track) -> list[Passage]:
        found = super()._close(track)
        self._path = "end"
        self._tag(found, track.id, self._frame.index)
        return found

    def _recount(self, index: int) -> list[Passage]:
        found = super()._recount(index)
        self._path = "recount"
        self._tag(found, None, index)
        return found

    def _tag(self, found: list[Passage], tid: int | None, at: int) -> None:
        for p in found:
            entry = self.waits.get(tid) if tid is not None else None
            self.reports.append(Report(
                passage=p, at=at, path=self._path,
                decided=entry[0] if entry is not None else None,
                waits=Counter(entry[1]) if entry is not None else Counter()))


def run(video: Path, clip: ClipLabels, config: AnalyzerConfig | None = None) -> LateAnalyzer:
    """Analyse one clip with recording on."""
    analyzer = LateAnalyzer(_scene_without_description(clip.scene), clip.fps, config)
    index = -1
    with OpenCVSource(video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            index += 1
            analyzer.feed(frame)
    analyzer.finish()
    return analyzer


def _matches(reports: list[Report], clip: ClipLabels) -> dict[int, int]:
    """Report index -> label index, as ``sensors.evaluate.match`` pairs them."""
    tol = clip.fps
    cands = sorted((abs(r.passage.frame - lab.frame), i, j)
                   for i, r in enumerate(reports) for j, lab in enumerate(clip.events)
                   if r.passage.direction == lab.direction
                   and abs(r.passage.frame - lab.frame) <= tol)
    used_r: dict[int, int] = {}
    used_l: set[int] = set()
    for _, i, j in cands:
        if i in used_r or j in used_l:
            continue
        used_r[i] = j
        used_l.add(j)
    return used_r


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("labels", type=Path, nargs="+")
    parser.add_argument("--meta", type=Path)
    parser.add_argument("--clip", action="append", default=[])
    parser.add_argument("--all", action="store_true", help="list every passage, not only late")
    parser.add_argument("--json", type=Path, help="write every row as JSON here")
    parser.add_argument("--set", action="append", default=[],
                        help="a config field: NAME=PYTHON_VALUE (top level only)")
    args = parser.parse_args()
    config = AnalyzerConfig()
    for item in args.set:
        key, value = item.split("=", 1)
        config = replace(config, **{key: ast.literal_eval(value)})
    meta = json.loads(args.meta.read_text())["clips"] if args.meta else {}
    rows: list[dict[str, Any]] = []
    for path in args.labels:
        labels = LabelFile.model_validate(json.loads(path.read_text()))
        for name, clip in labels.clips.items():
            split = clip.split or meta.get(name, {}).get("split")
            if split != "tuning" or (args.clip and name not in args.clip):
                continue
            analyzer = run(_find(name, path), clip, config)
            reports = sorted(analyzer.reports, key=lambda r: r.passage.frame)
            pairs = _matches(reports, clip)
            for i, r in enumerate(reports):
                j = pairs.get(i)
                label = clip.events[j].frame if j is not None else None
                own = (r.at - r.passage.frame) / clip.fps
                row = {
                    "clip": name, "dir": r.passage.direction, "frame": r.passage.frame,
                    "label": label, "at": r.at, "decided": r.decided, "path": r.path,
                    "delay": round(own, 2),
                    "delay_label": None if label is None else round((r.at - label) / clip.fps, 2),
                    "conf": r.passage.confidence, "track": r.passage.track,
                    "waits": dict(r.waits),
                }
                rows.append(row)
                late = own > 1.0 or (row["delay_label"] or 0.0) > 1.0
                if late or args.all:
                    print(f"{name:34s} {row['dir']:3s} lab {label!s:>5} pass {r.passage.frame:5d}"
                          f" dec {r.decided!s:>5} at {r.at:5d} own {own:5.2f}s"
                          f" lab {row['delay_label']!s:>5}s {r.path:7s} "
                          f"{'LATE' if late else '    '} {dict(r.waits)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""What the analyzer saw on chosen frames: picture, foreground mask, blobs, tracks.

For each chosen frame of a clip, writes one PNG (twice the working size): on
the left the working gray picture with the live tracks (red: confirmed, blue:
tentative, with their ids), on the right the foreground mask with the blobs
(green), the threshold line across both (yellow). ``--background`` adds the
background model's picture and the difference to it (x3).
``--median-background`` starts the background from the clip's per-pixel
median (every 3rd frame) instead of its first frame: an upper bound of what
a background without the first frame's people (ghosts) would give, printed as
tp/fp/fn beside the ordinary run's.

    DOORWATCH_CORPUS_DIR=/work/corpus/videos python -m bench.mask_dump \
        tests/corpus/labels.json umbrella_crossing_2.mp4 50,107,159 --out /tmp/dump

A tool for looking at failures; nothing in the product imports it. Tuning
split clips only (it never looks at a clip's split: the caller chooses).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from bench.miss_probe import _find
from sensors.analyzer import DoorwayAnalyzer, Passage
from sensors.evaluate import ClipLabels, LabelFile, _scene_without_description, match
from sensors.frames import Frame
from sensors.source_opencv import OpenCVSource


def _draw(analyzer: DoorwayAnalyzer, clip: ClipLabels, background: bool) -> np.ndarray:
    gray, mask = analyzer._gray, analyzer._last_mask
    assert gray is not None
    assert mask is not None
    picture = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    fg = cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)
    for b in analyzer.blobs:
        cv2.rectangle(fg, (int(b.x), int(b.y)), (int(b.x + b.w), int(b.y + b.h)), (0, 255, 0), 1)
    for t in analyzer._tracker.tracks:
        x, y, w, h = t.box
        colour = (0, 0, 255) if analyzer._tracker.is_confirmed(t) else (255, 0, 0)
        cv2.rectangle(picture, (int(x), int(y)), (int(x + w), int(y + h)), colour, 1)
        cv2.putText(picture, str(t.id), (int(x), int(y) + 8), cv2.FONT_HERSHEY_PLAIN, 0.7, colour)
    panels = [picture, fg]
    model = analyzer._background.background
    if background and model is not None and model.shape == gray.shape:
        diff = np.clip(cv2.absdiff(gray, model).astype(np.int32) * 3, 0, 255).astype(np.uint8)
        panels += [cv2.cvtColor(model, cv2.COLOR_GRAY2BGR), cv2.cvtColor(diff, cv2.COLOR_GRAY2BGR)]
    out = cv2.resize(np.hstack(panels), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    line = analyzer._line
    if line is not None:
        (x0, y0), (x1, y1) = clip.scene.threshold
        rows, cols = gray.shape
        for i in range(len(panels)):
            a = (round((x0 + i) * cols * 2), round(y0 * rows * 2))
            b = (round((x1 + i) * cols * 2), round(y1 * rows * 2))
            cv2.line(out, a, b, (0, 255, 255), 1)
    return np.asarray(out, np.uint8)


def run(video: Path, clip: ClipLabels, frames: set[int], out: Path, *, background: bool,
        median: bool) -> list[Passage]:
    """Analyse the clip, writing the chosen frames' pictures; returns the passages."""
    with OpenCVSource(video, keep_color=False) as source:
        decoded: list[Frame] = []
        while (frame := source.read()) is not None:
            decoded.append(frame)
    analyzer = DoorwayAnalyzer(_scene_without_description(clip.scene), clip.fps)
    if median:
        probe = DoorwayAnalyzer(_scene_without_description(clip.scene), clip.fps)
        smalls = np.stack([probe._prepare(f.gray) for f in decoded[::3]])
        analyzer._prepare(decoded[0].gray)
        analyzer._background.reset(np.median(smalls, axis=0).astype(np.uint8))
    passages: list[Passage] = []
    out.mkdir(parents=True, exist_ok=True)
    for frame in decoded:
        passages += analyzer.feed(frame)
        if frame.index in frames:
            name = f"{video.stem}_{frame.index}.png"
            cv2.imwrite(str(out / name), _draw(analyzer, clip, background))
    passages += analyzer.finish()
    return sorted(passages, key=lambda p: p.frame)


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("labels", type=Path)
    parser.add_argument("clip")
    parser.add_argument("frames", help="comma-separated frame numbers")
    parser.add_argument("--out", type=Path, default=Path("mask_dump"))
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--median-background", action="store_true")
    args = parser.parse_args()
    labels = LabelFile.model_validate(json.loads(args.labels.read_text()))
    clip = labels.clips[args.clip]
    video = _find(args.clip, args.labels)
    frames = {int(f) for f in args.frames.split(",") if f}
    passages = run(video, clip, frames, args.out, background=args.background,
                   median=args.median_background)
    score = match(passages, clip.events, clip.fps)
    start = "clip median" if args.median_background else "first frame"
    print(f"{args.clip}: background from the {start}: tp {score.tp} fp {score.fp} fn {score.fn}")
    for p in passages:
        print(f"   passage {p.direction} @{p.frame} track {p.track}")


if __name__ == "__main__":
    main()

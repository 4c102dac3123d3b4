"""Build the person-check training set from the corpus's tuning split.

What the network must tell apart, at the moment the analyzer is about to
report a crossing, is a box around **one whole person** (or a few people
together) from a box around **a piece of one** (head and shoulders, legs, a
torso whose legs were lost against the floor: the fragments that make one
person count two or three times) or around **no person**. The crossings
themselves are far too few to learn that from (the tuning split's analyzer
output holds 21 wrong passages in all), so the examples are taken from the
analyzer's tracks on every tuning clip, labelled by rules that need no
hand-made box:

* **person (1)**: a confirmed track seen alone in its blob, not cut by the
  picture's edge, that walks a body length in its life, whose blob's area and
  width are 0.7-1.5 times one person's at that place (what the analyzer has
  learned, :mod:`sensors.people`); sampled every quarter second;
* **piece (0)**: a part of such a box, cut out of the same frame: its top or
  bottom 25-55 % (a head and shoulders, legs), sometimes its left or right
  half; the region the network sees then shows the rest of the body around
  it, as it does for a fragment track;
* **no person (0)**: a box of the same size elsewhere in the picture with
  little foreground (a light patch, residue).

Nothing here reads the labelled crossings, so the tuning split's scores
stay a check the network was not fitted to. Only clips whose split is
``tuning`` are read.

Each region is ``2 * CONTEXT`` times the box's larger side, gray and
foreground mask, at ``2 * SIZE`` pixels square: twice what the network sees,
so training can shift and scale it.

    DOORWATCH_CORPUS_DIR=/work/corpus/videos \
        .venv/bin/python tools/personnet/dataset.py --out /tmp/personnet.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer  # noqa: E402
from sensors.evaluate import ClipLabels, load_labels  # noqa: E402
from sensors.frames import GrayImage  # noqa: E402
from sensors.personnet import CONTEXT, SIZE, crop_region  # noqa: E402
from sensors.source_opencv import OpenCVSource  # noqa: E402

SHARED = REPO / ".." / "shared" / "data"
LABELS = [
    (SHARED / "labels.json", REPO / "tests" / "corpus" / "shared_clips.json"),
    (REPO / "tests" / "corpus" / "labels.json", None),
]


def _videos() -> list[Path]:
    places = [Path(p) for p in os.environ.get("DOORWATCH_CORPUS_DIR", "").split(os.pathsep) if p]
    return [*places, SHARED / "videos", SHARED / "corpus"]


def tuning_clips() -> list[tuple[str, Path, ClipLabels]]:
    """``(name, video, labels)`` of every tuning clip whose video is found."""
    found: list[tuple[str, Path, ClipLabels]] = []
    for labels_path, meta_path in LABELS:
        labels = load_labels(labels_path)
        meta = load_labels_meta(meta_path) if meta_path is not None else {}
        for name, clip in labels.clips.items():
            split = clip.split or meta.get(name)
            if split != "tuning":
                continue
            places = [labels_path.parent / "videos", *_videos()]
            video = next((p / name for p in places if (p / name).exists()), None)
            if video is None:
                print(f"left out (video not found): {name}", file=sys.stderr)
                continue
            found.append((name, video, clip))
    return found


def _meta(path: Path) -> dict[str, dict[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: {k: str(v) for k, v in entry.items()} for name, entry in data["clips"].items()}


def load_labels_meta(path: Path) -> dict[str, str]:
    """Clip name -> split from a ``shared_clips.json``-style file."""
    return {name: entry["split"] for name, entry in _meta(path).items()}


SHARED_SCENES = {name: entry["scene_id"] for name, entry in
                 _meta(REPO / "tests" / "corpus" / "shared_clips.json").items()}


Box = tuple[float, float, float, float]


def _pieces(box: Box, rng: np.random.Generator) -> list[Box]:
    """Parts of a person's box that fragment tracks look like."""
    x, y, w, h = box
    top = rng.uniform(0.25, 0.55)
    bottom = rng.uniform(0.25, 0.55)
    out: list[Box] = [(x, y, w, top * h), (x, y + (1 - bottom) * h, w, bottom * h)]
    if rng.random() < 0.3:
        half = rng.uniform(0.35, 0.55)
        left = rng.random() < 0.5
        out.append((x, y, half * w, h) if left else (x + (1 - half) * w, y, half * w, h))
    return out


def _elsewhere(mask: GrayImage, box: Box, rng: np.random.Generator) -> Box | None:
    """A box of the same size at a random place with little foreground."""
    rows, cols = mask.shape[:2]
    _, _, w, h = box
    for _ in range(5):
        x = rng.uniform(0, max(1.0, cols - w))
        y = rng.uniform(0, max(1.0, rows - h))
        patch = mask[int(y):int(y + h) + 1, int(x):int(x + w) + 1]
        if patch.size and float(patch.mean()) < 0.1 * 255:
            return (x, y, w, h)
    return None


def record(video: Path, clip: ClipLabels, seed: int) -> list[tuple[GrayImage, GrayImage, int]]:
    """Self-labelled regions from the analyzer's tracks on ``video``."""
    rng = np.random.default_rng(seed)
    from sensors.evaluate import _scene_without_description
    # The analyzer as shipped, without any person check (it must not teach itself).
    config = dataclasses.replace(AnalyzerConfig(), person_model=None)
    analyzer = DoorwayAnalyzer(_scene_without_description(clip.scene), clip.fps, config)
    stride = max(1, round(clip.fps / 4))
    # Per track: samples waiting for the track's end (did it walk a body length?).
    waiting: dict[int, list[tuple[GrayImage, GrayImage, int]]] = {}
    walked: dict[int, bool] = {}
    out: list[tuple[GrayImage, GrayImage, int]] = []

    def region(gray: GrayImage, mask: GrayImage, box: Box) -> tuple[GrayImage, GrayImage]:
        return (crop_region(gray, box, 2 * CONTEXT, 2 * SIZE),
                crop_region(mask, box, 2 * CONTEXT, 2 * SIZE))

    with OpenCVSource(video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            analyzer.feed(frame)
            gray, mask = analyzer._gray, analyzer._last_mask
            live = {t.id for t in analyzer._tracker.tracks}
            for tid in [t for t in waiting if t not in live]:
                if walked.get(tid):
                    out += waiting[tid]
                del waiting[tid]
            if gray is None or mask is None or frame.index % stride:
                continue
            people = analyzer._people
            for track in analyzer._tracker.tracks:
                blob = track.blob
                state = analyzer._states.get(track.id)
                if (blob is None or state is None or track.shared or track.missed
                        or not analyzer._tracker.is_confirmed(track)
                        or analyzer._sharing.get(id(blob), 1) != 1
                        or analyzer._at_border(blob) or people is None):
                    continue
                if state.travel >= max(track.w, track.h):
                    walked[track.id] = True
                slope = analyzer.view_slope
                up = 0.0 if slope is None else analyzer._by_view(slope)
                person = people.at(blob.bottom - 0.5 * up * blob.h)
                if person is None or person.w <= 0:
                    continue
                ratio = min(blob.area / max(person.area, 1.0), blob.w / person.w)
                if not 0.7 <= ratio <= 1.5:
                    continue
                box = (blob.x, blob.y, blob.w, blob.h)
                rows = waiting.setdefault(track.id, [])
                rows.append((*region(gray, mask, box), 1))
                rows += [(*region(gray, mask, piece), 0) for piece in _pieces(box, rng)]
                other = _elsewhere(mask, box, rng)
                if other is not None:
                    rows.append((*region(gray, mask, other), 0))
    for tid, rows in waiting.items():
        if walked.get(tid):
            out += rows
    return out


def main() -> None:
    """Write the training set (``--out``, .npz: gray, mask, label, clip, scene)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grays: list[GrayImage] = []
    masks: list[GrayImage] = []
    labels: list[int] = []
    clips: list[str] = []
    scenes: list[str] = []
    for seed, (name, video, clip) in enumerate(tuning_clips()):
        rows = record(video, clip, seed)
        print(f"{name}: {sum(r[2] for r in rows)} person, {sum(1 - r[2] for r in rows)} not")
        for gray, mask, label in rows:
            grays.append(gray)
            masks.append(mask)
            labels.append(label)
            clips.append(name)
            scenes.append(clip.scene_id or SHARED_SCENES.get(name, name))
    np.savez_compressed(args.out, gray=np.stack(grays), mask=np.stack(masks),
                        label=np.array(labels, np.int64), clip=np.array(clips),
                        scene=np.array(scenes))
    print(f"{len(labels)} regions, {sum(labels)} person -> {args.out}")


if __name__ == "__main__":
    main()

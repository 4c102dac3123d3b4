"""Byte-for-byte check that a speed change left the analyzer's decisions alone.

Runs the analyzer over the shared clips (../shared/data) and the corpus's
*tuning* clips (tests/corpus/labels.json, videos in ``DOORWATCH_CORPUS_DIR``;
validation clips are never run here) and writes, per clip, every passage and
every track summary as canonical JSON. ``--save FILE`` records them;
``--check FILE`` compares them with a recording and exits 1 on any
difference, naming the clip. A third digest, of every frame's blob boxes,
is written too and compared only as information: a change may move a blob
by a pixel without moving any decision, but when blobs are identical the
decisions are identical for sure.

Run: ``DOORWATCH_CORPUS_DIR=/work/corpus/videos .venv/bin/python bench/same_passages.py
--save before.json`` on the old commit, then ``--check before.json`` on the new one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sensors.analyzer import DoorwayAnalyzer  # noqa: E402 - after the path fix-up above
from sensors.corpus import corpus_dirs_from_env  # noqa: E402
from sensors.evaluate import _scene_without_description, load_labels  # noqa: E402
from sensors.source_opencv import OpenCVSource  # noqa: E402

SHARED = REPO / ".." / "shared" / "data"
CORPUS_LABELS = REPO / "tests" / "corpus" / "labels.json"


def _clips() -> list[tuple[str, Path, Any]]:
    """(name, video, ClipLabels) of the shared clips and the corpus's tuning clips."""
    found: list[tuple[str, Path, Any]] = []
    for name, clip in load_labels(SHARED / "labels.json").clips.items():
        found.append((name, SHARED / "videos" / name, clip))
    raw = json.loads(CORPUS_LABELS.read_text())["clips"]
    labels = load_labels(CORPUS_LABELS).clips
    for name, clip in labels.items():
        if raw[name].get("split") != "tuning":
            continue
        for folder in corpus_dirs_from_env():
            if (folder / name).exists():
                found.append((name, folder / name, clip))
                break
        else:
            print(f"tuning clip {name} not found in DOORWATCH_CORPUS_DIR: left out")
    return found


def run_clip(video: Path, clip: Any) -> dict[str, Any]:
    """Passages, summaries and a digest of every frame's blobs for one clip."""
    analyzer = DoorwayAnalyzer(_scene_without_description(clip.scene), clip.fps)
    passages: list[dict[str, Any]] = []
    blobs = hashlib.sha256()
    with OpenCVSource(video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            passages += [{"at": frame.index, **p.model_dump()} for p in analyzer.feed(frame)]
            blobs.update(repr([(b.x, b.y, b.w, b.h, b.area) for b in analyzer.blobs]).encode())
    passages += [{"at": "finish", **p.model_dump()} for p in analyzer.finish()]
    return {"passages": passages,
            "summaries": [s.model_dump() for s in analyzer.summaries],
            "blobs": blobs.hexdigest(), "frames": analyzer.frames}


def main() -> None:
    """Record or check the decisions on every clip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--check", type=Path)
    parser.add_argument("--only", help="run only the clips whose name contains this")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name, video, clip in _clips():
        if args.only and args.only not in name:
            continue
        results[name] = run_clip(video, clip)
        print(f"{name}: {len(results[name]['passages'])} passages, "
              f"{len(results[name]['summaries'])} tracks", flush=True)
    if args.save:
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"saved to {args.save}")
        return
    before = json.loads(args.check.read_text())
    failed = False
    for name, now in results.items():
        old = before.get(name)
        if old is None:
            print(f"{name}: not in {args.check}")
            failed = True
            continue
        for key in ("passages", "summaries", "frames"):
            same = json.dumps(old[key], sort_keys=True) == json.dumps(now[key], sort_keys=True)
            if not same:
                print(f"{name}: {key} DIFFER")
                failed = True
        blobs = "same" if old["blobs"] == now["blobs"] else "differ (decisions may still agree)"
        print(f"{name}: blobs {blobs}")
    print("DIFFERENT" if failed else "IDENTICAL passages and summaries")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

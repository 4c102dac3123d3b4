"""Instructions per frame, doorwatch's analyzer against Frigate's motion stage, by callgrind.

Wall-clock ratios (``bench_frigate.py``) swing with whatever else the machine
runs; instruction counts do not. For each of ``bench_frigate.INPUTS`` this
runs, under ``valgrind --tool=callgrind``, a child that decodes the same
frames as the benchmark, feeds ``WARM`` of them to one side and then either
stops or feeds ``COUNT`` more; the difference of the two totals over
``COUNT`` is that side's instructions per frame, with decoding, imports and
start-up taken out (after one unmeasured run that fills numba's cache for the
CPU valgrind presents). OpenCV runs on one thread, as in the benchmark.

Run: ``DOORWATCH_FRIGATE_SRC=/path/to/frigate .venv/bin/python bench/frigate_instructions.py``
(about ten minutes; ``--only 320`` runs one input). Figures go to
``bench/results/frigate_instructions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARM = 100
COUNT = 200
RESULT = REPO / "bench" / "results" / "frigate_instructions.json"


def _child(side: str, index: int, frames_to_feed: int) -> None:
    """Decode the input's frames, feed ``frames_to_feed`` of them to ``side``."""
    import cv2

    from bench import bench_frigate as bf
    from firmware_config.scene import Scene
    from sensors.analyzer import DoorwayAnalyzer
    from sensors.evaluate import load_labels
    from sensors.frames import Frame

    cv2.setNumThreads(1)
    bf.MAX_FRAMES = WARM + COUNT  # decoding the rest would only slow callgrind down
    _, name, size = bf.INPUTS[index]
    frames = bf._frames(bf.SHARED / "videos" / name, size)
    clip = load_labels(bf.SHARED / "labels.json").clips[name]
    if side == "doorwatch":
        scene = Scene(threshold=clip.scene.threshold, inside_point=clip.scene.inside_point)
        analyzer = DoorwayAnalyzer(scene, clip.fps)
        for i, gray in enumerate(frames[:frames_to_feed]):
            analyzer.feed(Frame(i, i / clip.fps, gray))
    else:
        detector_cls, defaults = bf.load_frigate(Path(os.environ["DOORWATCH_FRIGATE_SRC"]))
        shape = frames[0].shape[:2]
        detector = detector_cls(shape, bf._config(defaults, shape), round(clip.fps))
        for gray in frames[:frames_to_feed]:
            detector.detect(gray)


def _instructions(side: str, index: int, frames_to_feed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--child", side, str(index), str(frames_to_feed)],
            check=True, capture_output=True, cwd=REPO)
        summary = re.search(r"^summary:\s*(\d+)", out.read_text(errors="replace"), re.M)
        assert summary is not None
        return int(summary.group(1))


def main() -> None:
    """Measure every input (or the ones ``--only`` names) on both sides."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--only", help="inputs whose label contains this")
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    from bench import bench_frigate as bf

    rows: list[dict[str, Any]] = []
    for index, (label, name, _) in enumerate(bf.INPUTS):
        if args.only and args.only not in label:
            continue
        # One throwaway doorwatch run over every measured frame first: numba's cache is
        # per CPU, and valgrind shows the program another CPU than the host's, so a
        # kernel's first call under it compiles it (minutes of instructions). Some are
        # first called only when someone reaches the line (the line counter's), so a
        # warm-up over fewer frames left their compiling inside the measured frames.
        _instructions("doorwatch", index, WARM + COUNT)
        per: dict[str, float] = {}
        for side in ("doorwatch", "frigate"):
            low = _instructions(side, index, WARM)
            high = _instructions(side, index, WARM + COUNT)
            per[side] = (high - low) / COUNT
        rows.append({"input": label, "clip": name, "frames": f"{WARM}-{WARM + COUNT}",
                     "doorwatch_instr": round(per["doorwatch"]),
                     "frigate_instr": round(per["frigate"]),
                     "ratio": round(per["frigate"] / per["doorwatch"], 2)})
        r = rows[-1]
        print(f"{label:24} doorwatch {r['doorwatch_instr'] / 1e6:6.2f} M/frame  "
              f"frigate {r['frigate_instr'] / 1e6:6.2f} M/frame  "
              f"frigate/doorwatch {r['ratio']:.2f}", flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"warm": WARM, "count": COUNT, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

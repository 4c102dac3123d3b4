"""Analysis frames/s of the doorway analyzer on ONE thread, at 320x240 and 640x480.

Inputs: the shared real clips (../shared/data, resized to each size) and a
synthetic corridor rendered at each size. Only ``DoorwayAnalyzer.feed`` is
timed; decoding, resizing and rendering happen before the clock starts.
Results go to ``bench/results/analyzer.json`` (git-ignored) and a table.

Run: ``.venv/bin/python bench/bench_analyzer.py``
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from firmware_config.scene import Scene  # noqa: E402
from sensors.analyzer import DoorwayAnalyzer  # noqa: E402 - after the path fix-up above
from sensors.evaluate import load_labels  # noqa: E402
from sensors.frames import Frame  # noqa: E402
from sensors.source_synthetic import SCENARIOS, SyntheticSource  # noqa: E402

DATA = (REPO / ".." / "shared" / "data").resolve()
SIZES = [(320, 240), (640, 480)]
MAX_FRAMES = 1500


def _real_frames(video: Path, size: tuple[int, int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    while len(frames) < MAX_FRAMES:
        ok, image = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        frames.append(cv2.resize(gray, size, interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


def _synthetic_frames(size: tuple[int, int]) -> tuple[list[np.ndarray], Scene]:
    source = SyntheticSource(SCENARIOS["exit_then_entry"], size=size)
    frames = [f.gray for _ in range(10_000) if (f := source.read()) is not None]
    return frames, source.scene


def _time(frames: list[np.ndarray], scene: Scene, fps: float) -> float:
    analyzer = DoorwayAnalyzer(scene, fps)
    wrapped = [Frame(i, i / fps, g) for i, g in enumerate(frames)]
    start = time.perf_counter()
    for frame in wrapped:
        analyzer.feed(frame)
    return len(wrapped) / (time.perf_counter() - start)


def main() -> None:
    """Run every input at every size and write the results."""
    cv2.setNumThreads(1)
    rows: list[dict[str, object]] = []
    inputs: list[tuple[str, Path | None, Scene | None, float]] = [("synthetic", None, None, 25.0)]
    if (DATA / "labels.json").exists():
        for name, clip in load_labels(DATA / "labels.json").clips.items():
            inputs.append((name, DATA / "videos" / name, clip.scene, clip.fps))
    for size in SIZES:
        for name, video, scene, fps in inputs:
            if video is None:
                frames, scene = _synthetic_frames(size)
            else:
                frames = _real_frames(video, size)
            assert scene is not None
            best = max(_time(frames, scene, fps) for _ in range(2))
            rows.append({"input": name, "width": size[0], "height": size[1],
                         "frames": len(frames), "fps": round(best, 1)})
    out = REPO / "bench" / "results" / "analyzer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": 1, "opencv": cv2.__version__, "numpy": np.__version__,
            "machine": platform.machine(), "python": platform.python_version()}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"{'input':40} {'size':>9} {'frames':>6} {'frames/s':>9}")
    for r in rows:
        print(f"{r['input']!s:40} {r['width']}x{r['height']:<5} {r['frames']:>6} {r['fps']:>9}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()

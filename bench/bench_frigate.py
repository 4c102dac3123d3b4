"""Speed beside Frigate's motion stage: doorwatch's whole analyzer against Frigate's
``ImprovedMotionDetector`` with its default configuration, on the same decoded
frames, on the same CPU core, in the same run.

Frigate is not a dependency and none of its code is in this repository: point
``DOORWATCH_FRIGATE_SRC`` at a checkout of blakeblackshear/frigate (the folder
holding ``frigate/motion/improved_motion.py``). That one file is loaded from
there; the few ``frigate`` modules it imports are replaced at run time by the
stand-ins below (an abstract base class, a configuration object, the OpenCV
contour helper and an unused PTZ type). The configuration's values are read
from the checkout's own ``frigate/config/camera/motion.py`` (the ``default=``
of each field), so "its defaults" are the checkout's, not a copy of ours.
Without the variable the benchmark says why and writes no figures: CI has no
copy of Frigate (nothing but package registries is reachable there, and
Frigate is not on PyPI), so this benchmark cannot be required there.

Timing: every frame is decoded (and resized) before any clock starts, the
process is pinned to one core and OpenCV to one thread, and doorwatch and
Frigate alternate over ``ROUNDS`` rounds; the best round of each counts, by the wall
clock (``ratio``) and by the thread's CPU time (``cpu_ratio``, which leaves out
time spent waiting for the core on a shared machine).
Frigate sees what it sees in production, the luminance plane (the gray frame).
Results go to ``bench/results/frigate.json``, and the block between this
benchmark's markers in BENCHMARKS.md is rewritten from them (nothing else in
that file: ``python -m bench frigate`` used to rewrite all of it with only
these rows). Callgrind's instructions per frame
(``bench/frigate_instructions.py``) are shown there too when its results exist.

Run: ``DOORWATCH_FRIGATE_SRC=/path/to/frigate .venv/bin/python bench/bench_frigate.py``
"""

from __future__ import annotations

import abc
import ast
import contextlib
import importlib.util
import json
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import write_block  # noqa: E402
from firmware_config.scene import Scene  # noqa: E402
from sensors.analyzer import DoorwayAnalyzer  # noqa: E402 - after the path fix-up above
from sensors.evaluate import load_labels  # noqa: E402
from sensors.frames import Frame  # noqa: E402

SHARED = REPO / ".." / "shared" / "data"
RESULT = REPO / "bench" / "results" / "frigate.json"
INSTRUCTIONS = REPO / "bench" / "results" / "frigate_instructions.json"
BEGIN = "<!-- bench_frigate: begin -->"
END = "<!-- bench_frigate: end -->"
ROUNDS = 3
MAX_FRAMES = 1500
# (label, clip in ../shared/data/videos, size or None for the clip's own size)
INPUTS: list[tuple[str, str, tuple[int, int] | None]] = [
    ("CAVIAR front 384x288", "caviar_OneLeaveShopReenter1front.mpg", None),
    ("overhead 320x240", "kiwan_old-building.mp4", (320, 240)),
    ("overhead 640x360", "kiwan_old-building.mp4", (640, 360)),
]


class _MotionDetector(abc.ABC):  # noqa: B024 - only a base for the loaded class
    """Stand-in for ``frigate.motion.MotionDetector`` (an abstract base, nothing else)."""


def _grab_contours(found: tuple[Any, ...]) -> Any:
    """Stand-in for Frigate's contour helper: OpenCV 4/5 return (contours, hierarchy)."""
    return found[0] if len(found) == 2 else found[1]


def _defaults(src: Path) -> dict[str, Any]:
    """The ``default=`` of every field of Frigate's ``MotionConfig``, read from its source."""
    tree = ast.parse((src / "frigate" / "config" / "camera" / "motion.py").read_text())
    values: dict[str, Any] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(node.value, ast.Call)):
            for kw in node.value.keywords:
                if kw.arg == "default":
                    # Defaults that are not literals (factories) are not settings.
                    with contextlib.suppress(ValueError):
                        values[node.target.id] = ast.literal_eval(kw.value)
    return values


def load_frigate(src: Path) -> tuple[type, dict[str, Any]]:
    """Load ``ImprovedMotionDetector`` from a Frigate checkout with its imports stubbed."""
    stubs = {name: types.ModuleType(name) for name in (
        "frigate", "frigate.camera", "frigate.config", "frigate.config.config",
        "frigate.motion", "frigate.util", "frigate.util.image")}
    stubs["frigate.camera"].PTZMetrics = object  # type: ignore[attr-defined]
    stubs["frigate.config.config"].RuntimeMotionConfig = object  # type: ignore[attr-defined]
    stubs["frigate.motion"].MotionDetector = _MotionDetector  # type: ignore[attr-defined]
    stubs["frigate.util.image"].grab_cv2_contours = _grab_contours  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        path = src / "frigate" / "motion" / "improved_motion.py"
        spec = importlib.util.spec_from_file_location("frigate_improved_motion", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module.ImprovedMotionDetector, _defaults(src)


def _config(defaults: dict[str, Any], shape: tuple[int, int]) -> types.SimpleNamespace:
    # No motion mask configured: Frigate rasterizes that to all 255 at the frame's size.
    return types.SimpleNamespace(**defaults, rasterized_mask=np.full(shape, 255, np.uint8))


def _frames(video: Path, size: tuple[int, int] | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    while len(frames) < MAX_FRAMES:
        ok, image = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if size is not None:
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(gray))
    cap.release()
    return frames


def _time_doorwatch(frames: list[np.ndarray], scene: Scene, fps: float) -> tuple[float, float]:
    """Frames per second by the wall clock and by the thread's CPU time."""
    analyzer = DoorwayAnalyzer(scene, fps)
    wrapped = [Frame(i, i / fps, g) for i, g in enumerate(frames)]
    start, cpu = time.perf_counter(), time.thread_time()
    for frame in wrapped:
        analyzer.feed(frame)
    return (len(wrapped) / (time.perf_counter() - start),
            len(wrapped) / (time.thread_time() - cpu))


def _time_frigate(detector_cls: type, defaults: dict[str, Any], frames: list[np.ndarray],
                  fps: float) -> tuple[float, float]:
    shape = frames[0].shape[:2]
    detector = detector_cls(shape, _config(defaults, shape), round(fps))
    start, cpu = time.perf_counter(), time.thread_time()
    for gray in frames:
        detector.detect(gray)
    return (len(frames) / (time.perf_counter() - start),
            len(frames) / (time.thread_time() - cpu))


def run(src: Path) -> dict[str, Any]:
    """Measure every input; the ratio is doorwatch frames/s over Frigate's."""
    detector_cls, defaults = load_frigate(src)
    cv2.setNumThreads(1)
    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    clips = load_labels(SHARED / "labels.json").clips
    rows = []
    for label, name, size in INPUTS:
        clip = clips[name]
        frames = _frames(SHARED / "videos" / name, size)
        scene = Scene(threshold=clip.scene.threshold, inside_point=clip.scene.inside_point)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(_time_doorwatch(frames, scene, clip.fps))
            theirs.append(_time_frigate(detector_cls, defaults, frames, clip.fps))
        wall_ours, wall_theirs = max(o[0] for o in ours), max(t[0] for t in theirs)
        cpu_ours, cpu_theirs = max(o[1] for o in ours), max(t[1] for t in theirs)
        rows.append({"input": label, "clip": name, "width": frames[0].shape[1],
                     "height": frames[0].shape[0], "frames": len(frames),
                     "doorwatch_fps": round(wall_ours, 1), "frigate_fps": round(wall_theirs, 1),
                     "ratio": round(wall_ours / wall_theirs, 2),
                     # The same rounds by the thread's CPU time: time the process
                     # waited for the core (other helpers on a shared machine) is
                     # left out, so this ratio moves less with the load.
                     "doorwatch_cpu_fps": round(cpu_ours, 1),
                     "frigate_cpu_fps": round(cpu_theirs, 1),
                     "cpu_ratio": round(cpu_ours / cpu_theirs, 2)})
    commit = ""
    head = src / ".git" / "HEAD"
    if head.exists():
        commit = head.read_text().strip()
    return {"frigate_src": str(src), "frigate_head": commit, "frigate_defaults": {
        k: v for k, v in defaults.items() if not isinstance(v, dict)},
        "core": core, "opencv": cv2.__version__, "numpy": np.__version__,
        "machine": platform.machine(), "python": platform.python_version(), "rows": rows}


def section(data: dict[str, Any], instructions: dict[str, Any] | None = None) -> list[str]:
    """The BENCHMARKS.md block for these figures (and callgrind's, if given)."""
    lines = [BEGIN, "", "Speed beside Frigate's motion stage (`python -m bench frigate` rewrites "
             "this block only; raw figures in `bench/results/frigate.json`):", "",
             "| measure | figure | target |", "|---|---|---|"]
    if data.get("skipped"):
        lines.append(f"| analysis frames/s against Frigate's motion stage | not measured: "
                     f"{data['skipped']} | >= 1.0x |")
    for r in data.get("rows", []):
        lines.append(f"| analysis frames/s, doorwatch (whole analyzer) / Frigate "
                     f"ImprovedMotionDetector (defaults), same frames, one core: {r['input']} | "
                     f"{r['doorwatch_fps']:.0f} / {r['frigate_fps']:.0f} = {r['ratio']:.2f}x "
                     f"| >= 1.0x |")
        if "cpu_ratio" in r:
            lines.append(f"| the same by thread CPU time (waits for the core left out): "
                         f"{r['input']} | {r['doorwatch_cpu_fps']:.0f} / "
                         f"{r['frigate_cpu_fps']:.0f} = {r['cpu_ratio']:.2f}x | >= 1.0x |")
    if instructions and instructions.get("rows"):
        rows = instructions["rows"]
        figures = ", ".join(f"{r['doorwatch_instr'] / 1e6:.2f} / {r['frigate_instr'] / 1e6:.2f} M"
                            for r in rows)
        lines.append(f"| instructions per frame (callgrind, frames {rows[0]['frames']}), "
                     f"doorwatch / Frigate: {', '.join(r['input'] for r in rows)} "
                     f"(`bench/frigate_instructions.py`) | {figures} | doorwatch <= Frigate |")
    lines += ["", END]
    return lines


def main() -> None:
    """Run if a Frigate checkout is given; otherwise say why not."""
    src = os.environ.get("DOORWATCH_FRIGATE_SRC", "")
    skipped = ""
    if not src or not (Path(src) / "frigate" / "motion" / "improved_motion.py").exists():
        skipped = ("DOORWATCH_FRIGATE_SRC does not name a checkout of blakeblackshear/frigate "
                   "(the folder with frigate/motion/improved_motion.py)")
    elif not (SHARED / "labels.json").exists():
        skipped = f"the shared clips are not at {SHARED}"
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    if skipped:
        # Written all the same so `make bench` shows why this row has no figures.
        RESULT.write_text(json.dumps({"skipped": skipped}))
        print(f"bench_frigate skipped: {skipped}")
        return
    data = run(Path(src))
    RESULT.write_text(json.dumps(data, indent=2))
    instructions = json.loads(INSTRUCTIONS.read_text()) if INSTRUCTIONS.exists() else None
    write_block(REPO / "BENCHMARKS.md", section(data, instructions), BEGIN, END)
    print(f"{'input':24} {'frames':>6} {'doorwatch/s':>11} {'frigate/s':>10} {'ratio':>6} "
          f"{'cpu ratio':>9}")
    for r in data["rows"]:
        print(f"{r['input']:24} {r['frames']:6d} {r['doorwatch_fps']:11.0f} "
              f"{r['frigate_fps']:10.0f} {r['ratio']:6.2f} {r['cpu_ratio']:9.2f}")
    print(f"written to {RESULT} and BENCHMARKS.md (its bench_frigate block)")


if __name__ == "__main__":
    main()

"""Where the analyzer's CPU time goes, stage by stage, on the Frigate benchmark's frames.

``frigate_instructions.py`` counts instructions, and instructions mislead here:
numpy's small operations and OpenCV's memory-bound passes cost more time per
instruction than the DFTs and resizes they would replace (session 8 found two
changes with fewer instructions and more CPU time). This wraps the named
functions or methods, runs the analyzer over one input of
``bench_frigate.INPUTS`` (decoded and resized first, one core, OpenCV on one
thread) and prints the thread CPU time per frame spent inside each, best of
``--rounds`` runs by total. Wrapped stages nest (a stage's time includes the
stages it calls), and each wrapper adds about a microsecond per call.

Run: ``.venv/bin/python bench/stage_times.py 1 sensors.background:BackgroundModel._register
sensors.background:cv2.phaseCorrelate sensors.analyzer:find_blobs`` (``0`` is CAVIAR
384x288, ``1`` kiwan 320x240, ``2`` kiwan 640x360; a target is ``module:attribute.path``,
so ``sensors.background:cv2.absdiff`` counts every ``cv2.absdiff`` call).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _wrap(target: str, spent: dict[str, int]) -> None:
    """Replace ``target`` by a wrapper adding its thread CPU time to ``spent``."""
    module, _, path = target.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[target] = spent.get(target, 0) + time.thread_time_ns() - start

    setattr(owner, name, timed)


def main() -> None:
    """Time the named stages over one benchmark input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=int, help="index into bench_frigate.INPUTS")
    parser.add_argument("targets", nargs="*", help="module:attribute.path to time")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_intermixed_args()

    import cv2

    from bench import bench_frigate as bf
    from firmware_config.scene import Scene
    from sensors.analyzer import DoorwayAnalyzer
    from sensors.evaluate import load_labels
    from sensors.frames import Frame

    cv2.setNumThreads(1)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    label, name, size = bf.INPUTS[args.input]
    frames = bf._frames(bf.SHARED / "videos" / name, size)
    clip = load_labels(bf.SHARED / "labels.json").clips[name]
    scene = Scene(threshold=clip.scene.threshold, inside_point=clip.scene.inside_point)
    spent: dict[str, int] = {}
    for target in args.targets:
        _wrap(target, spent)
    best: dict[str, float] | None = None
    for _ in range(args.rounds):
        analyzer = DoorwayAnalyzer(scene, clip.fps)
        # After construction: it warms the compiled kernels up (loading them
        # from numba's cache), which is not frame time.
        spent.clear()
        wrapped = [Frame(i, i / clip.fps, gray) for i, gray in enumerate(frames)]
        start = time.thread_time_ns()
        for frame in wrapped:
            analyzer.feed(frame)
        total = time.thread_time_ns() - start
        row = {"whole frame": total / len(wrapped) / 1e3}
        row.update({t: spent.get(t, 0) / len(wrapped) / 1e3 for t in args.targets})
        if best is None or row["whole frame"] < best["whole frame"]:
            best = row
    assert best is not None
    print(f"{label}, {len(frames)} frames, best of {args.rounds} rounds (thread CPU time):")
    for stage, us in best.items():
        print(f"  {stage:60s} {us:8.1f} us/frame")


if __name__ == "__main__":
    main()

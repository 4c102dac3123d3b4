"""Instructions per analysed frame, counted by callgrind (run inside the arm64 root).

    valgrind --tool=callgrind --callgrind-out-file=OUT python3 frame_cost.py CLIP SCENE N

Decodes the first ``FRAMES`` frames of CLIP in every run, then feeds the first
N of them to the analyzer; two runs with different N give, by difference,
the instructions the analyzer spends per frame with decoding and start-up
taken out. Counts are the same for the same binary and input whatever the
machine is doing, so they stand where emulated wall time does not.
"""

from __future__ import annotations

import sys

from firmware_config.scene import load_scene
from sensors.analyzer import DoorwayAnalyzer
from sensors.source_opencv import OpenCVSource

FRAMES = 200


def main() -> None:
    """Decode FRAMES frames, analyse the first N."""
    clip, scene_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    frames = []
    with OpenCVSource(clip, keep_color=False) as source:
        while len(frames) < FRAMES and (frame := source.read()) is not None:
            frames.append(frame)
        fps = source.fps
    analyzer = DoorwayAnalyzer(load_scene(scene_path), fps)
    for frame in frames[:count]:
        analyzer.feed(frame)
    print(f"decoded {len(frames)} analysed {min(count, len(frames))} size {frames[0].size}")


if __name__ == "__main__":
    main()

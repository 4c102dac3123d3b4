"""Score the analyzer with and without the person check on the tuning split.

    DOORWATCH_CORPUS_DIR=/work/corpus/videos .venv/bin/python tools/personnet/evaluate.py \\
        [--model sensors/models/personnet.onnx] [--gate 0.5] [--scene SCENE]

Prints per clip and per viewpoint tp/fp/fn and F1, without the check and with
it, and how many regions the network scored. ``--scene`` limits the clips to
one scene (with a model trained with ``train.py --hold-out SCENE``, the
figures of a scene the network never saw). Tuning clips only, like
``dataset.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import SHARED_SCENES, tuning_clips  # noqa: E402

from sensors.analyzer import AnalyzerConfig  # noqa: E402
from sensors.evaluate import Score, evaluate_clip  # noqa: E402
from sensors.personnet import DEFAULT_MODEL  # noqa: E402

VIEWPOINTS = {"caviar_promod_front": "front", "kiwan_walkway": "overhead",
              "oculus_hall": "oblique"}


def main() -> None:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--gate", type=float, default=0.5)
    parser.add_argument("--scene", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a float field of AnalyzerConfig, for both runs (repeatable)")
    args = parser.parse_args()
    changes = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    base = dataclasses.replace(AnalyzerConfig(), person_model=None, **changes)
    checked = dataclasses.replace(base, person_model=str(args.model), person_gate=args.gate)
    pooled: dict[tuple[str, str], Score] = defaultdict(Score)
    for name, video, clip in tuning_clips():
        scene = clip.scene_id or SHARED_SCENES.get(name, name)
        if args.scene and scene != args.scene:
            continue
        view = clip.viewpoint or VIEWPOINTS.get(scene, "?")
        row = [f"{name[:36]:36}"]
        for tag, config in (("without", base), ("with", checked)):
            r = evaluate_clip(video, clip, config)
            pooled[(tag, view)] += r.score
            pooled[(tag, "all")] += r.score
            s = r.score
            row.append(f"{tag}: {s.tp:3d} {s.fp:3d} {s.fn:3d} F1 {s.f1:.3f} "
                       f"{r.analysis_fps:5.0f} fps")
        print("  ".join(row))
    for view in sorted({v for _, v in pooled}):
        a, b = pooled[("without", view)], pooled[("with", view)]
        print(f"{view:10} without: tp {a.tp} fp {a.fp} fn {a.fn} F1 {a.f1:.3f} P {a.precision:.3f}"
              f" R {a.recall:.3f}   with: tp {b.tp} fp {b.fp} fn {b.fn} F1 {b.f1:.3f}"
              f" P {b.precision:.3f} R {b.recall:.3f}")


if __name__ == "__main__":
    main()

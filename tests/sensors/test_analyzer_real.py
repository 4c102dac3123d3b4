"""The analyzer on the shared, hand-labelled real clips (../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from sensors.analyzer import DoorwayAnalyzer
from sensors.evaluate import evaluate_labels, load_labels
from sensors.frames import Frame
from sensors.source_opencv import OpenCVSource
from tests.paths import SHARED_DATA
from tests.requirements import need

LABELS = SHARED_DATA / "labels.json"

# Issue 3 asks for overall F1 >= 0.95. Measured 0.963 (tp 26, fp 0, fn 2:
# precision 1.00, recall 0.93; OneLeaveShop1 1.00, OneLeaveShopReenter1
# 1.00, TwoLeaveShop2 0.67 (the pair counted once: one blob with a man
# standing behind them from the start, and no one walks alone in the clip,
# so one person's size is never learned to recount it with), kiwan 0.978
# (22/0/1: one of two people whose blobs merged at the line)). The margin
# is thin: one crossing fewer is 0.943. Earlier rounds moved between 0.81
# and 0.89 under small tuning changes; changing any of eight constants
# (view, margin, origin depth, count) by a step now gives 0.943-0.982
# (mean 0.957). The mechanisms (view learned from how people walk, tracks
# parting from a group or continuing a lost one keep its history, a clear
# origin side unless a lost track vouches, recount once one person's size
# is known, count by area and width) are general, but the real clips are
# few. Deterministic for given code.
MIN_OVERALL_F1 = 0.95


@pytest.mark.slow
def test_overall_f1_on_the_shared_clips() -> None:
    need("data", LABELS.exists(), f"labelled clips not found at {SHARED_DATA}")
    results, total = evaluate_labels(LABELS)
    assert len(results) == len(load_labels(LABELS).clips)
    assert total.f1 >= MIN_OVERALL_F1, [(r.clip, r.score) for r in results]


def test_real_frames_with_a_brightness_step_give_no_passage() -> None:
    """Real frames before anyone crosses, with the light stepping up then down."""
    need("data", LABELS.exists(), f"labelled clips not found at {SHARED_DATA}")
    name = "caviar_OneLeaveShop1front.mpg"
    clip = load_labels(LABELS).clips[name]
    analyzer = DoorwayAnalyzer(clip.scene, clip.fps)
    passages = []
    with OpenCVSource(SHARED_DATA / "videos" / name, keep_color=False) as source:
        while (frame := source.read()) is not None and frame.index < 140:
            gain = 1.5 if 40 <= frame.index < 90 else (0.6 if frame.index >= 90 else 1.0)
            gray = np.clip(frame.gray.astype(np.float32) * gain, 0, 255).astype(np.uint8)
            passages += analyzer.feed(Frame(frame.index, frame.t, gray))
    assert passages == []


def test_a_real_still_frame_repeated_gives_no_passage() -> None:
    need("data", LABELS.exists(), f"labelled clips not found at {SHARED_DATA}")
    name = "kiwan_old-building.mp4"
    clip = load_labels(LABELS).clips[name]
    with OpenCVSource(SHARED_DATA / "videos" / name, keep_color=False) as source:
        first = source.read()
    assert first is not None
    analyzer = DoorwayAnalyzer(clip.scene, clip.fps)
    found = [p for i in range(120) for p in analyzer.feed(Frame(i, i / clip.fps, first.gray))]
    assert found == []

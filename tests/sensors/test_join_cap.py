"""Joins are capped before one person's size is known (``DoorwayAnalyzer._person_height``).

People walking one behind the other down a lane (seen from above, up an
escalator) are pieces of foreground a few pixels apart, which ``_join`` takes
for the head, torso and legs of one person unless one person's height there
is known; that height is learned only from someone walking alone, which a
lane joined into a column never is. The tallest pieces the mask gives
stand in until then.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from firmware_config.scene import Scene
from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer
from sensors.frames import Frame, GrayImage
from sensors.people import PersonSizeConfig

Canvas = npt.NDArray[np.floating[Any]]
SCENE = Scene(threshold=((40 / 320, 0.5), (300 / 320, 0.5)), inside_point=(0.5, 0.25))
# People are 24 x 40 px; pieces of one lane (or of one person) are 8 px apart,
# less than ``BlobConfig.join_gap`` (0.04 of 240 px).
H, GAP = 40, 8
LANE_FROM, INSIDE, HALVES_FROM = 120, 190, 235


def _frames(seed: int) -> list[GrayImage]:
    """A lone person walks down the picture (frames 25-115); then a lane of three
    people 8 px apart walks in from above (from 120, whole in the picture from
    190); then one person cut at the waist (from 235).
    People are dark and textured (their clothes' folds move with them), walking
    2 px a frame."""
    rng = np.random.default_rng(seed)
    texture = rng.normal(0, 8, (240, 320)).astype(np.float32)
    base = 150.0 + cv2.GaussianBlur(texture, (0, 0), 1.5)
    cloth = 60.0 + cv2.GaussianBlur(rng.normal(0, 30, (H, 24)).astype(np.float32), (0, 0), 1.0)

    def box(image: Canvas, cx: float, top: float, rows: slice = slice(0, H)) -> None:
        part = cloth[rows]
        y, x = int(top), int(cx) - 12
        image[y:y + part.shape[0], x:x + 24] = part

    frames: list[GrayImage] = []
    for i in range(300):
        image = base.copy()
        if 25 <= i < 115:
            box(image, 80.0, 10.0 + 2.0 * (i - 25))
        if LANE_FROM <= i < HALVES_FROM:
            # Walking in from above the picture: whole inside from frame INSIDE on.
            top = 4.0 + 2.0 * (i - INSIDE)
            for k in range(3):
                if top + k * (H + GAP) >= 0:
                    box(image, 220.0, top + k * (H + GAP))
        if i >= HALVES_FROM:
            top = 40.0 + 2.0 * (i - HALVES_FROM)
            half = (H - GAP) // 2
            box(image, 120.0, top, slice(0, half))
            box(image, 120.0, top + half + GAP, slice(half + GAP, H))
        image += rng.normal(0, 2, image.shape).astype(np.float32)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def _tallest(config: AnalyzerConfig | None, seed: int, frames: range) -> list[float]:
    """The tallest blob's height on each of ``frames``."""
    analyzer = DoorwayAnalyzer(SCENE, 25.0, config)
    tallest: list[float] = []
    for i, gray in enumerate(_frames(seed)):
        analyzer.feed(Frame(i, i / 25.0, gray))
        if i in frames:
            tallest.append(max((b.h for b in analyzer.blobs), default=0.0))
    return tallest


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lane_is_not_joined_into_a_column_before_anyone_walked_alone_three_times(
    seed: int,
) -> None:
    """One person has walked alone (one track: one person's size needs three),
    so one person's size is unknown; the lane stays pieces no taller than
    two people, and the person cut at the waist is still joined whole."""
    lane = _tallest(None, seed, range(INSIDE + 25, HALVES_FROM))
    assert max(lane) <= 2 * H, lane
    halves = _tallest(None, seed, range(HALVES_FROM + 5, 300))
    assert min(halves) >= H - 4, halves


def test_without_the_pieces_size_the_lane_is_one_column() -> None:
    """What the cap changes: learning nothing from the pieces, the lane is one
    blob three people tall (the column no lone person's size is ever learned from)."""
    never = AnalyzerConfig(pieces=PersonSizeConfig(min_samples=10**9))
    lane = _tallest(never, 0, range(INSIDE + 25, HALVES_FROM))
    assert min(lane) >= 3 * H, lane

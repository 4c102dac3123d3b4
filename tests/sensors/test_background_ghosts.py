"""Ghosts of what stood still when the background was learned (issue 14, class 3).

Someone standing in the first frame is learned into the background; when they
walk away, the place where they stood differs from the background and is
still. Static absorption takes such still foreground only outside the boxes
the caller protects, and a walker's box holds the ghost it walked out of, so
the ghost stays foreground for good (umbrella_crossing_2, tuning split: blobs
the picture's height for the whole clip; session 9's class B). A release of
such ghosts was measured in session 10 and not landed (bench/NOTES.md,
ghosts, session 10); the second test guards the other side of any such rule:
someone who walks in and stands still must stay foreground.
"""

from __future__ import annotations

import numpy as np
import pytest

from sensors.background import BackgroundModel

FPS = 25.0


def _floor() -> np.ndarray:
    """A textured floor, 320 x 180."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:180, 0:320]
    tiles = 110.0 + 25.0 * (((x // 24) + (y // 24)) % 2)
    return np.clip(tiles + rng.normal(0.0, 4.0, (180, 320)), 0, 255).astype(np.float32)


def _with_person(floor: np.ndarray, cx: int, cy: int) -> np.ndarray:
    """A dark standing figure (an ellipse 16 x 50 px) centred at (cx, cy)."""
    y, x = np.mgrid[0:180, 0:320]
    frame = floor.copy()
    frame[((x - cx) / 8.0) ** 2 + ((y - cy) / 25.0) ** 2 <= 1.0] = 40.0
    return frame


def _frame(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 1.5, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _protect_all() -> np.ndarray:
    """The caller's protection over the whole picture (a walker's box holding the ghost)."""
    return np.full((180, 320), 255, np.uint8)


def _ghost_pixels() -> int:
    """Foreground left where the first frame's person stood, 3 s after they walked away."""
    floor = _floor()
    model = BackgroundModel(FPS)
    index = 0
    for _ in range(10):
        model.apply(_frame(_with_person(floor, 100, 90), index), _protect_all())
        index += 1
    # They walk to the right, 3 px a frame, and out of the picture.
    for step in range(1, 80):
        cx = 100 + 3 * step
        image = _with_person(floor, cx, 90) if cx < 340 else floor
        seg = model.apply(_frame(image, index), _protect_all())
        index += 1
    return int(np.count_nonzero(seg.mask[60:121, 88:113]))


@pytest.mark.xfail(
    strict=True,
    reason=(
        "issue 14 class B: protection keeps a first-frame ghost foreground for good "
        "(>500 px here); a release of still pristine regions whose outline is the "
        "background's was measured and not landed: it cost umbrella_crossing crossings "
        "against main 13f9fa5 (bench/NOTES.md, ghosts, session 10)"
    ),
)
def test_the_ghost_of_someone_standing_in_the_first_frame_is_released_under_protection() -> None:
    assert _ghost_pixels() < 30


def test_someone_who_walks_in_and_stands_still_under_protection_stays_foreground() -> None:
    floor = _floor()
    model = BackgroundModel(FPS)
    index = 0
    for _ in range(10):
        model.apply(_frame(floor, index), _protect_all())
        index += 1
    # They walk in from the left and stop at x = 160 for 4 s.
    for step in range(0, 140):
        cx = min(160, 20 + 3 * step)
        seg = model.apply(_frame(_with_person(floor, cx, 90), index), _protect_all())
        index += 1
    assert np.count_nonzero(seg.mask[66:115, 153:168]) > 0.8 * 49 * 15

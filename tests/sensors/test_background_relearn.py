"""When the background model re-learns the picture: lighting, not a crowd.

``BackgroundModel.apply`` re-learns the background from the frame when, after
the global gain, more than ``relearn_fraction`` of the picture still differs
(a lamp lighting one half). Seen steeply from above, a crowd crossing a street
covers that much too (umbrella_crossing, tuning split: 19 re-learns in its
first 250 frames, each taking the crowd into the background and leaving its
ghosts behind). Light keeps the background's texture (each small cell of the
frame is an affine function of the background's); a crowd replaces it.
"""

from __future__ import annotations

import numpy as np
import pytest

from sensors.background import BackgroundModel

FPS = 25.0


def _floor(seed: int = 3) -> np.ndarray:
    """A textured floor (tiles with noise), 320 x 180."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:180, 0:320]
    tiles = 90.0 + 40.0 * (((x // 20) + (y // 20)) % 2)
    return np.clip(tiles + rng.normal(0.0, 12.0, (180, 320)), 0, 255).astype(np.uint8)


def _settled(floor: np.ndarray) -> BackgroundModel:
    model = BackgroundModel(FPS)
    for _ in range(10):
        model.apply(floor)
    return model


def test_a_lamp_lighting_one_half_is_relearned() -> None:
    floor = _floor()
    lit = floor.astype(np.float32)
    lit[:, :200] = lit[:, :200] * 1.7 + 10.0
    frame = np.clip(lit, 0, 255).astype(np.uint8)
    assert _settled(floor).apply(frame).relearned


@pytest.mark.xfail(strict=True, reason="issue 14, sessions 9-10: any difference over "
                   "relearn_fraction is re-learned, a crowd included (the per-cell lighting "
                   "test, branch relearn-lit, passes this but loses umbrella_crossing's "
                   "crowd crossings, counted on the re-learns' fragments: bench/NOTES.md, "
                   "relearn, session 10)")
def test_a_crowd_covering_half_the_picture_is_not_relearned() -> None:
    floor = _floor()
    rng = np.random.default_rng(5)
    frame = floor.copy()
    y, x = np.mgrid[0:180, 0:320]
    # Umbrellas from above: discs of their own shade and print, side by side.
    for cx in range(25, 320, 45):
        for cy in (30, 90, 150):
            if rng.random() < 0.9:
                disc = (x - cx) ** 2 + (y - cy) ** 2 < 26 ** 2
                shade = rng.choice([rng.uniform(15, 50), rng.uniform(190, 240)])
                frame[disc] = np.clip(shade + rng.normal(0, 6, int(disc.sum())), 0, 255)
    model = _settled(floor)
    covered = np.abs(frame.astype(np.int16) - floor) > 40
    assert np.count_nonzero(covered) > 0.4 * frame.size
    assert not model.apply(frame).relearned

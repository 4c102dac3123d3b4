"""AreaShrink gives OpenCV's INTER_AREA pixels, cheaper (sensors/shrink.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sensors.shrink import AreaShrink

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"


@pytest.mark.parametrize(("src", "dst"), [
    ((384, 288), (320, 240)),   # CAVIAR
    ((832, 464), (320, 178)),   # a phone video
    ((854, 480), (320, 180)),
    ((1280, 720), (320, 180)),  # a whole factor: OpenCV's own path
    ((400, 300), (320, 240)),
    ((333, 251), (320, 241)),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_pixels_as_inter_area_on_random_images(
    src: tuple[int, int], dst: tuple[int, int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    shrink = AreaShrink(src, dst)
    for _ in range(3):
        gray = rng.integers(0, 256, (src[1], src[0]), dtype=np.uint8)
        expected = cv2.resize(gray, dst, interpolation=cv2.INTER_AREA)
        assert np.array_equal(shrink(gray), expected)


@pytest.mark.skipif(not (SHARED / "caviar_OneLeaveShop1front.mpg").exists(),
                    reason="the shared clips (../shared/data/videos) are not here")
@pytest.mark.parametrize("clip", ["caviar_OneLeaveShop1front.mpg", "kiwan_old-building.mp4"])
def test_the_same_pixels_as_inter_area_on_real_frames(clip: str) -> None:
    cap = cv2.VideoCapture(str(SHARED / clip))
    shrink: AreaShrink | None = None
    frames = 0
    try:
        while frames < 120:
            ok, image = cap.read()
            if not ok:
                break
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            h, w = gray.shape
            size = (320, round(h * 320 / w))
            shrink = shrink or AreaShrink((w, h), size)
            assert np.array_equal(shrink(gray), cv2.resize(gray, size,
                                                           interpolation=cv2.INTER_AREA))
            frames += 1
    finally:
        cap.release()
    assert frames > 0

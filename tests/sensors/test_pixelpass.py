"""The compiled per-pixel passes against the OpenCV calls they replaced, on real frames.

The background model's decisions were tuned with OpenCV's arithmetic; the
kernels in ``sensors.pixelpass`` must give the same bits. The reference below
is the model's former per-pixel code (kept here only as the test's oracle):
it runs beside the kernels on the very inputs the model hands them while it
analyses the shared clips, and every output array must be equal.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from sensors import pixelpass, tracking
from sensors.analyzer import DoorwayAnalyzer
from sensors.background import _translate
from sensors.evaluate import load_labels
from sensors.source_opencv import OpenCVSource
from sensors.tracking import Blob
from tests.paths import SHARED_DATA
from tests.requirements import need

LABELS = SHARED_DATA / "labels.json"


def _reference_foreground(gray: np.ndarray, shift: tuple[int, int], inv_gain: float,
                          bg: np.ndarray, dev: np.ndarray, edges: np.ndarray | None,
                          factor: float, base: float, valid: tuple[int, int, int, int]
                          ) -> tuple[np.ndarray, np.ndarray, int]:
    frame = gray.astype(np.float32)
    sx, sy = shift
    if shift != (0, 0):
        h, w = frame.shape
        crop = frame[max(0, sy):h - max(0, -sy), max(0, sx):w - max(0, -sx)]
        frame = cv2.copyMakeBorder(crop, max(0, -sy), max(0, sy), max(0, -sx), max(0, sx),
                                   cv2.BORDER_REPLICATE)
    if inv_gain != 1.0:
        frame *= inv_gain
    diff = cv2.absdiff(frame, bg)
    thr = cv2.addWeighted(dev, factor, dev, 0.0, base)
    if edges is not None:
        thr = cv2.add(thr, edges)
    mask = cv2.compare(diff, thr, cv2.CMP_GT)
    x0, y0, x1, y1 = valid
    rect = np.zeros_like(mask)
    rect[y0:y1, x0:x1] = 255
    mask = cv2.bitwise_and(mask, rect)
    return frame, mask, cv2.countNonZero(mask)


def _reference_update(frame: np.ndarray, prev: np.ndarray | None, bg: np.ndarray,
                      dev: np.ndarray, edges: np.ndarray | None, factor: float, base: float,
                      mask: np.ndarray, protect: np.ndarray | None, still: np.ndarray,
                      rates: tuple[float, float, float], still_fraction: float,
                      absorb_frames: int) -> int:
    thr = cv2.addWeighted(dev, factor, dev, 0.0, base)
    if edges is not None:
        thr = cv2.add(thr, edges)
    diff = cv2.absdiff(frame, bg)
    background = cv2.bitwise_not(mask)
    cv2.accumulateWeighted(frame, bg, rates[0], background)
    cv2.accumulateWeighted(frame, bg, rates[1], mask)
    cv2.accumulateWeighted(diff, dev, rates[2], background)
    if prev is None:
        return 0
    change = cv2.absdiff(frame, prev)
    candidates = cv2.compare(change, thr * still_fraction, cv2.CMP_LT)
    candidates = cv2.bitwise_and(mask, candidates)
    if protect is not None:
        candidates = cv2.subtract(candidates, protect)
    cv2.add(still, np.ones_like(still), dst=still)
    cv2.bitwise_and(still, candidates, dst=still)
    _, ready = cv2.threshold(still, absorb_frames - 0.5, 255, cv2.THRESH_BINARY)
    cv2.copyTo(frame, ready, bg)
    cv2.threshold(still, absorb_frames - 0.5, 0, cv2.THRESH_TOZERO_INV, dst=still)
    return cv2.countNonZero(ready)


class _Checked:
    """Wraps the kernels the background model calls: each call is first run by
    the reference on copies, then by the kernel, and the results compared."""

    warm_up = staticmethod(pixelpass.warm_up)
    strip_stats = staticmethod(pixelpass.strip_stats)

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self._references: dict[int, tuple[Any, Any]] = {}

    def _note(self, what: str, happened: bool = True) -> None:
        if happened:
            self.seen[what] = self.seen.get(what, 0) + 1

    def foreground(self, gray: Any, shift: Any, inv_gain: float, bg: Any, dev: Any,
                   edges: Any, factor: float, base: float, valid: Any, frame: Any,
                   mask: Any, back: Any = None) -> int:
        want_frame, want_mask, want_count = _reference_foreground(
            gray, shift, inv_gain, bg, dev, edges, factor, base, valid)
        count = pixelpass.foreground(gray, shift, inv_gain, bg, dev, edges, factor, base,
                                     valid, frame, mask, back)
        np.testing.assert_array_equal(frame, want_frame)
        np.testing.assert_array_equal(mask, want_mask)
        assert count == want_count
        if back is not None:
            # The mask moved back into the frame's coordinates, as cv2.copyMakeBorder did.
            np.testing.assert_array_equal(back[0], _translate(mask, *back[1], False))
        self._note("frames")
        self._note("shifted", shift != (0, 0))
        self._note("gain", inv_gain != 1.0)
        self._note("edges", edges is not None)
        return count

    def update(self, frame: Any, prev: Any, bg: Any, dev: Any, edges: Any, factor: float,
               base: float, mask: Any, protect: Any, still: Any, rates: Any,
               still_fraction: float, absorb_frames: int) -> None:
        bg2, dev2, still2 = bg.copy(), dev.copy(), still.copy()
        absorbed = _reference_update(frame, prev, bg2, dev2, edges, factor, base, mask,
                                     protect, still2, rates, still_fraction, absorb_frames)
        pixelpass.update(frame, prev, bg, dev, edges, factor, base, mask, protect, still, rates,
                         still_fraction, absorb_frames)
        np.testing.assert_array_equal(bg, bg2)
        np.testing.assert_array_equal(dev, dev2)
        np.testing.assert_array_equal(still, still2)
        self._note("protected", protect is not None)
        self._note("absorbed", absorbed > 0)

    def lighting(self, gray: Any, shift: Any, bg: Any, prev_mask: Any, step: int) -> Any:
        h, w = gray.shape
        rows = np.clip(np.arange(0, h, step) + shift[1], 0, h - 1)
        cols = np.clip(np.arange(0, w, step) + shift[0], 0, w - 1)
        quiet = cv2.bitwise_not(prev_mask[::step, ::step])
        want = (cv2.mean(np.ascontiguousarray(gray[np.ix_(rows, cols)]), quiet)[0],
                cv2.mean(np.ascontiguousarray(bg[::step, ::step]), quiet)[0])
        got = pixelpass.lighting(gray, shift, bg, prev_mask, step)
        assert got == want
        return got

    def residual_grid(self, image: Any, bg: Any, shift: Any, border: int, size: Any) -> Any:
        # The moved difference as cv2.absdiff of the moved image, its grid by cv2.resize,
        # the mean by ndarray.mean.
        diff = _reference_absdiff_moved(image, bg, shift, border)
        np.testing.assert_array_equal(pixelpass.absdiff_moved(image, bg, shift, border), diff)
        want = cv2.resize(diff, size, interpolation=cv2.INTER_AREA)
        cells, mean = pixelpass.residual_grid(image, bg, shift, border, size)
        np.testing.assert_array_equal(cells, want)
        assert mean == float(want.mean())
        self._note("residual")
        self._note("residual grid", pixelpass.AreaReducer.applies(diff.shape[::-1], size))
        self._note("fused residual", not pixelpass.AreaReducer.applies(diff.shape[::-1], size))
        return cells, mean

    def split_parts(self, mask: Any, box: Any, area: float, aspect: float, scale: int) -> Any:
        got = pixelpass.split_parts(mask, box, area, aspect, scale)
        want = _reference_split(mask, Blob(*box, area), aspect, scale)
        assert got == [(b.x, b.w, b.area) for b in want]
        self._note("splits", len(got) > 1)
        return got

    def edges(self, bg: Any, factor: float) -> Any:
        got = pixelpass.edges(bg, factor)
        np.testing.assert_array_equal(got, _reference_edges(bg, factor))
        self._note("edge maps")
        return got

    def pyr_down(self, gray: Any, out: Any) -> Any:
        want = cv2.pyrDown(gray.astype(np.float32))
        got = pixelpass.pyr_down(gray, out)
        np.testing.assert_array_equal(got, want)
        return got

    def spectrum(self, image: Any) -> Any:
        got = pixelpass.spectrum(image)
        if got is not None:
            self._references[id(got)] = (got, image.copy())
        return got

    def phase_correlate(self, reference: Any, image: Any) -> Any:
        # Against cv2.phaseCorrelate on the windowed background the spectrum came from.
        kept, windowed = self._references[id(reference)]
        assert kept is reference
        want = cv2.phaseCorrelate(windowed, image, None)
        got = pixelpass.phase_correlate(reference, image)
        assert got == want
        self._note("phase correlation")
        return got

    # The blob finder's (sensors.tracking) clean-up and labelling.
    def halve_close(self, mask: Any, level: float) -> Any:
        want, want_count = _reference_halve_close(mask, level)
        got, count = pixelpass.halve_close(mask, level)
        np.testing.assert_array_equal(got, want)
        assert count == want_count
        self._note("blob masks")
        return got, count

    def components(self, image: Any) -> Any:
        got = pixelpass.components(image)
        np.testing.assert_array_equal(got, _reference_components(image))
        self._note("several components", len(got) > 1)
        return got


def _reference_absdiff_moved(image: np.ndarray, bg: np.ndarray, shift: tuple[int, int],
                             border: int) -> np.ndarray:
    sx, sy = shift
    h, w = image.shape
    b = border
    if abs(sx) <= b and abs(sy) <= b:
        moved = image[b + sy:h - b + sy, b + sx:w - b + sx]
    else:
        moved = _translate(image, -sx, -sy, replicate=True)[b:-b, b:-b]
    return np.asarray(cv2.absdiff(moved, bg[b:-b, b:-b]))


def _reference_edges(bg: np.ndarray, factor: float) -> np.ndarray:
    gx = cv2.Sobel(bg, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(bg, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return np.asarray(cv2.addWeighted(np.abs(gx), factor, np.abs(gy), factor, 0.0))


def _reference_halve_close(mask: np.ndarray, level: float) -> tuple[np.ndarray, int]:
    h, w = mask.shape
    small = cv2.resize(mask, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    _, clean = cv2.threshold(small, level, 255, cv2.THRESH_BINARY)
    clean = cv2.morphologyEx(clean, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return clean, cv2.countNonZero(clean)


def _reference_components(image: np.ndarray) -> np.ndarray:
    count, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        image, 8, cv2.CV_32S, cv2.CCL_BBDT)
    return np.asarray(stats[1:count])


@pytest.mark.parametrize(("name", "frames", "expected"), [
    # A shaking camera: shifts, the edge term, people protected, still parts absorbed.
    # (Its working size, 320 x 178, has an odd half height: cv2.phaseCorrelate runs.)
    ("kiwan_old-building.mp4", 900,
     {"shifted", "edges", "edge maps", "protected", "absorbed", "gain", "residual",
      "residual grid", "blob masks", "several components", "splits"}),
    # 384 x 288, reduced to the 320-px working width by the compiled INTER_AREA.
    ("caviar_OneLeaveShopReenter1front.mpg", 390,
     {"protected", "absorbed", "blob masks", "several components", "phase correlation",
      "fused residual"}),
])
def test_the_kernels_give_opencvs_bits_on_real_frames(
        monkeypatch: pytest.MonkeyPatch, name: str, frames: int, expected: set[str]) -> None:
    need("data", LABELS.exists(), f"labelled clips not found at {SHARED_DATA}")
    clip = load_labels(LABELS).clips[name]
    checked = _Checked()
    monkeypatch.setattr("sensors.background.pixelpass", checked)
    monkeypatch.setattr("sensors.tracking.pixelpass", checked)
    analyzer = DoorwayAnalyzer(clip.scene, clip.fps)
    with OpenCVSource(SHARED_DATA / "videos" / name, keep_color=False) as source:
        while (frame := source.read()) is not None and frame.index < frames:
            if frame.size[0] > 320:
                size = (320, round(frame.size[1] * 320 / frame.size[0]))
                want = cv2.resize(frame.gray, size, interpolation=cv2.INTER_AREA)
                np.testing.assert_array_equal(analyzer._prepare(frame.gray), want)
            analyzer.feed(frame)
    assert checked.seen["frames"] >= frames - 5
    assert expected <= set(checked.seen), expected - set(checked.seen)


@pytest.mark.parametrize(("src", "dst"), [
    ((384, 288), (320, 240)), ((352, 288), (320, 262)), ((400, 300), (320, 240)),
    ((720, 576), (320, 256)), ((13, 7), (10, 5))])
def test_area_reduction_is_opencvs_inter_area(src: tuple[int, int],
                                              dst: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (src[1], src[0]), dtype=np.uint8)
    # Smooth areas too, where sums land on .5 and rounding half to even shows.
    gray[: src[1] // 2] = (np.arange(src[0]) % 7 * 30).astype(np.uint8)
    assert pixelpass.AreaReducer.applies(src, dst)
    np.testing.assert_array_equal(pixelpass.AreaReducer(src, dst)(gray),
                                  cv2.resize(gray, dst, interpolation=cv2.INTER_AREA))


def test_six_to_five_takes_the_block_path_and_gives_the_same_pixels() -> None:
    # 384 -> 320 (the CAVIAR clips) and 768 -> 640 run the 6:5 block loop; a
    # table of another shape runs the general one. Both are OpenCV's pixels.
    rng = np.random.default_rng(11)
    for src, dst, block in [((384, 288), (320, 240), True), ((768, 576), (640, 480), True),
                            ((385, 288), (320, 240), False), ((400, 300), (320, 240), False)]:
        reducer = pixelpass.AreaReducer(src, dst)
        assert reducer._six_five is block, src
        gray = rng.integers(0, 256, (src[1], src[0]), dtype=np.uint8)
        np.testing.assert_array_equal(reducer(gray),
                                      cv2.resize(gray, dst, interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("shape", [(240, 320), (180, 320), (6, 8), (2, 2), (120, 10)])
def test_halve_close_is_opencvs_resize_threshold_and_close(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(17)
    for share in (0.05, 0.3, 0.6, 0.9):
        # 0/255 masks as the background model makes them, and any gray levels.
        for mask in (((rng.random(shape) < share) * 255).astype(np.uint8),
                     rng.integers(0, 256, shape, dtype=np.uint8)):
            got, count = pixelpass.halve_close(mask, 140.25)
            want, want_count = _reference_halve_close(mask, 140.25)
            np.testing.assert_array_equal(got, want)
            assert count == want_count


def test_components_are_opencvs_in_opencvs_order() -> None:
    # BBDT numbers components by the first 2 x 2 block it meets, not the first
    # pixel: random masks of every small shape and density catch any other order.
    rng = np.random.default_rng(19)
    several = 0
    for _ in range(2000):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        image = ((rng.random(shape) < rng.random()) * 255).astype(np.uint8)
        got = pixelpass.components(image)
        np.testing.assert_array_equal(got, _reference_components(image))
        several += len(got) > 1
    assert several > 500


@pytest.mark.parametrize("shape", [(120, 160), (144, 192), (90, 160), (6, 8), (2, 2)])
def test_phase_correlate_is_opencvs_bit_for_bit(shape: tuple[int, int]) -> None:
    # A textured picture and a moved, noisy copy (the shift found, with its
    # sub-pixel centroid and response), and unrelated pictures (a weak peak).
    rng = np.random.default_rng(23)
    for moved in ((1, 2), (-3, 0), (0, 0), None):
        ref = cv2.GaussianBlur(rng.random(shape).astype(np.float32) * 255, (3, 3), 0)
        image = (rng.random(shape).astype(np.float32) * 255 if moved is None
                 else np.roll(ref, moved, (0, 1)) + rng.random(shape).astype(np.float32))
        spectrum = pixelpass.spectrum(ref)
        assert spectrum is not None
        assert pixelpass.phase_correlate(spectrum, image) == cv2.phaseCorrelate(ref, image, None)


def test_phase_correlate_leaves_odd_and_padded_sizes_to_opencv() -> None:
    assert pixelpass.spectrum(np.ones((45, 80), np.float32)) is None
    assert pixelpass.spectrum(np.ones((60, 81), np.float32)) is None
    # 134 is not a fast DFT size: OpenCV pads it.
    assert pixelpass.spectrum(np.ones((60, 134), np.float32)) is None


def test_whole_factors_are_left_to_opencv() -> None:
    assert not pixelpass.AreaReducer.applies((640, 480), (320, 240))
    assert not pixelpass.AreaReducer.applies((320, 240), (320, 240))
    assert not pixelpass.AreaReducer.applies((300, 200), (320, 240))


@pytest.mark.parametrize("size", [(320, 240), (321, 241), (9, 7), (5, 5)])
def test_pyr_down_is_opencvs_on_the_float_frame(size: tuple[int, int]) -> None:
    gray = np.random.default_rng(3).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    out = np.empty(((size[1] + 1) // 2, (size[0] + 1) // 2), np.float32)
    np.testing.assert_array_equal(pixelpass.pyr_down(gray, out),
                                  cv2.pyrDown(gray.astype(np.float32)))


def test_strip_stats_are_the_strip_means_spread() -> None:
    gray = np.random.default_rng(5).integers(0, 256, (240, 320), dtype=np.uint8)
    gray[:, :100] //= 4
    strips = cv2.reduce(gray, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    sums = strips.reshape(32, 10).sum(axis=1, dtype=np.float64)
    mean, std = cv2.meanStdDev(sums)
    pixels = 240.0 * 10
    got = pixelpass.strip_stats(gray, 32)
    assert got == pytest.approx((mean.item() / pixels, std.item() / pixels), abs=1e-9)


@pytest.mark.parametrize("shift", [(0, 0), (3, -2), (-12, 5), (14, 13), (-30, -9)])
def test_absdiff_moved_replicates_the_border_as_cv2(shift: tuple[int, int]) -> None:
    rng = np.random.default_rng(13)
    image = (rng.random((60, 80)) * 200).astype(np.float32)
    bg = (rng.random((60, 80)) * 200).astype(np.float32)
    b = 5
    moved = _translate(image, -shift[0], -shift[1], replicate=True)[b:-b, b:-b]
    np.testing.assert_array_equal(pixelpass.absdiff_moved(image, bg, shift, b),
                                  cv2.absdiff(moved, bg[b:-b, b:-b]))


@pytest.mark.parametrize("shape", [(70, 140), (69, 140), (37, 53), (70, 141), (100, 140),
                                   (64, 60), (7, 13)])
def test_area_floats_is_opencvs_inter_area_on_float_images(shape: tuple[int, int]) -> None:
    # Non-whole factors run compiled (OpenCV's table loop), whole ones (100 x 140,
    # 64 x 60 to 4 x 4) stay OpenCV's: both must give cv2.resize's bits.
    rng = np.random.default_rng(11)
    for trial in range(100):
        image = (rng.random(shape) * [1.0, 50.0, 255.0][trial % 3]).astype(np.float32)
        want = cv2.resize(image, (4, 4), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(pixelpass.area_floats(image, (4, 4)), want)
    image = (rng.random(shape) * 255).astype(np.float32)
    size = (max(1, shape[1] // 3), max(1, shape[0] // 5))
    np.testing.assert_array_equal(pixelpass.area_floats(image, size),
                                  cv2.resize(image, size, interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("shape", [(240, 320), (178, 320), (288, 384), (5, 7), (2, 3), (1, 4),
                                   (3, 1), (1, 1)])
def test_edges_are_opencvs_sobel_sum(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(13)
    for trial in range(20):
        bg = (rng.random(shape) * [255.0, 1.0, 40.0, 1e-3][trial % 4]).astype(np.float32)
        if trial % 5 == 4:
            bg = np.round(bg).astype(np.float32)
        for factor in (1.0, 0.7):
            np.testing.assert_array_equal(pixelpass.edges(bg, factor), _reference_edges(bg, factor))


def _reference_split(mask: np.ndarray, blob: Blob, aspect: float, scale: int = 1) -> list[Blob]:
    # tracking._split before it was compiled (cv2.reduce, np.repeat, argmin per cut).
    if blob.w < aspect * blob.h or blob.w < 8:
        return [blob]
    x0, y0, w, h = int(blob.x), int(blob.y), int(blob.w), int(blob.h)
    if scale == 1:
        columns = cv2.reduce(mask[y0:y0 + h, x0:x0 + w], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
    else:
        x0, y0, x1, y1 = x0 // scale, y0 // scale, (x0 + w) // scale, (y0 + h) // scale
        cells = cv2.reduce(mask[y0:y1, x0:x1], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)[0]
        columns = np.repeat(cells * scale, scale)
    return _reference_split_columns(columns, blob, aspect)


def _reference_split_columns(columns: np.ndarray, blob: Blob, aspect: float) -> list[Blob]:
    if blob.w < aspect * blob.h or blob.w < 8:
        return [blob]
    w = int(blob.w)
    lo, hi = w // 4, w - w // 4
    cut = lo + int(columns[lo:hi].argmin())
    left = Blob(blob.x, blob.y, float(cut), blob.h, blob.area * cut / w)
    right = Blob(blob.x + cut, blob.y, blob.w - cut, blob.h, blob.area * (w - cut) / w)
    return (_reference_split_columns(columns[:cut], left, aspect)
            + _reference_split_columns(columns[cut:], right, aspect))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_split_parts_cut_where_the_python_splitter_did(scale: int) -> None:
    rng = np.random.default_rng(17 + scale)
    h, w = 120, 160
    cuts = 0
    for trial in range(400):
        mask = np.where(rng.random((h, w)) < [0.1, 0.5, 0.9][trial % 3], 255, 0).astype(np.uint8)
        if trial % 4 == 0:
            # Whole empty columns: ties, where the first minimum must win.
            mask[:, rng.integers(0, w, 20)] = 0
        bw = int(rng.integers(1, w * scale // scale)) // scale * scale
        bh = int(rng.integers(1, 60)) // scale * scale + scale
        bx = int(rng.integers(0, w * scale - bw + 1)) // scale * scale
        by = int(rng.integers(0, h * scale - bh + 1)) // scale * scale
        if scale == 1:
            bx, by = min(bx, w - bw), min(by, h - bh)
        blob = Blob(float(bx), float(by), float(bw), float(bh), float(rng.integers(1, 5000)))
        aspect = [1.25, 0.5, 2.0][trial % 3]
        want = _reference_split(mask, blob, aspect, scale)
        got = tracking._split(mask, blob, aspect, scale)
        assert got == want, (trial, blob, aspect)
        cuts += len(got) > 1
    assert cuts > 100


@pytest.mark.parametrize(("shape", "border"), [((120, 160), 10), ((90, 160), 10), ((89, 160), 10),
                                               ((144, 192), 12), ((28, 36), 2), ((20, 20), 2),
                                               ((16, 16), 4)])
def test_residual_grid_is_opencvs_moved_difference_grid_and_mean(
        shape: tuple[int, int], border: int) -> None:
    # Whole factors (120 x 160 less a 10-px border: 4 x 4 cells of 25 x 35) run fused;
    # the others (70 or 69 rows) by area_floats; 2 x 2 cells (16 x 16 less 4) by OpenCV.
    rng = np.random.default_rng(19)
    for trial in range(60):
        scale = [255.0, 3.0, 1e-3][trial % 3]
        image = (rng.random(shape) * scale).astype(np.float32)
        bg = (rng.random(shape) * scale).astype(np.float32)
        shift = (int(rng.integers(-2 * border, 2 * border + 1)),
                 int(rng.integers(-2 * border, 2 * border + 1))) if trial % 4 else (0, 0)
        diff = _reference_absdiff_moved(image, bg, shift, border)
        want = cv2.resize(diff, (4, 4), interpolation=cv2.INTER_AREA)
        cells, mean = pixelpass.residual_grid(image, bg, shift, border, (4, 4))
        np.testing.assert_array_equal(cells, want)
        assert mean == float(want.mean())


def _reference_person_sizes(samples: np.ndarray, filled: list[int], floor_fraction: float,
                            min_samples: int, borrow: int, quantile: float
                            ) -> list[tuple[float, float, float] | None]:
    # sensors.people's refresh before it was compiled (np.partition per band).
    memory = samples.shape[1]
    bands = [samples[b, :min(f, memory)] for b, f in enumerate(filled)]
    every = np.concatenate([b[:, 0] for b in bands])
    middle = len(every) // 2
    floor = floor_fraction * float(np.partition(every, middle)[middle])
    n = len(bands)
    found: list[tuple[float, float, float] | None] = []
    for band in range(n):
        picked = bands[band][bands[band][:, 0] >= floor]
        for reach in range(1, borrow + 1):
            if len(picked) >= min_samples:
                break
            lo, hi = max(0, band - reach), min(n - 1, band + reach)
            near = np.concatenate(bands[lo:hi + 1])
            picked = near[near[:, 0] >= floor]
        if len(picked) < min_samples:
            found.append(None)
            continue
        k = int(quantile * (len(picked) - 1))
        area, h, w = (float(v) for v in np.partition(picked, k, axis=0)[k])
        found.append((area, h, w))
    return found


def test_person_sizes_are_the_partial_sorts_order_statistics() -> None:
    rng = np.random.default_rng(23)
    known = 0
    for trial in range(400):
        bands, memory = int(rng.integers(1, 8)), int(rng.integers(1, 60))
        samples = np.zeros((bands, memory, 3), np.float64)
        filled = [int(rng.integers(0, 2 * memory)) for _ in range(bands)]
        if sum(filled) == 0:
            filled[0] = 1
        for b in range(bands):
            n = min(filled[b], memory)
            samples[b, :n] = rng.random((n, 3)) * [3000.0, 150.0, 80.0]
            if trial % 3 == 0:
                samples[b, :n] = np.round(samples[b, :n] / 50.0) * 50.0  # ties
        args = (samples, filled, [0.3, 0.0, 1.5][trial % 3], int(rng.integers(1, 30)),
                int(rng.integers(0, 3)), [0.35, 0.9, 0.0, 1.0][trial % 4])
        got = pixelpass.person_sizes(*args)
        assert got == _reference_person_sizes(*args), trial
        known += sum(g is not None for g in got)
    assert known > 200

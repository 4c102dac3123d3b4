"""Foreground segmentation that survives shaking cameras and lighting changes.

Per frame (registration in OpenCV; the per-pixel steps 2-4 as two compiled
passes over the pixels, :mod:`sensors.pixelpass`):

1. **Global motion**: the frame's translation against the background is
   measured by phase correlation on a half-size image, only when the picture
   differs from the background more than usual, and accepted only when it
   makes most of a 4 x 4 grid match better (a door or a person moving drags
   phase correlation too, but explains only its own cells). The frame is
   moved by whole pixels into the background's coordinates; pixels the
   shift brings in from outside the image are never foreground.
2. **Lighting**: the frame is divided by a global gain (mean of frame over mean
   of background, on pixels that were background in the previous frame), so a
   light switching on or an IR switch does not make the whole picture
   foreground. If, after that, a large share of the picture still differs (a
   non-uniform change such as a lamp lighting one half), the change cannot be
   people: the background is re-learned from this frame and the frame is
   reported as ``relearned`` so the tracker does not start tracks on it.
3. **Difference test** with a per-pixel threshold ``T0 + k * dev`` where
   ``dev`` is a running mean of the absolute difference on background pixels:
   noisy or textured places (edges the registration leaves, flicker) need a
   larger difference than flat, quiet floor. While the camera has shaken in
   the last seconds, the background's gradient is added too: no registration
   is exact, and a strong edge misregistered by a pixel differs by about its
   gradient (a step edge would otherwise make a row of speckle tracks).
4. **Update**: background pixels follow the frame with a time constant of a
   few seconds; foreground pixels far more slowly. Foreground that has not
   changed at all for ``absorb_time`` (an opened door leaf, a bag put down)
   is absorbed at once, except inside boxes the caller protects (people).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sensors import pixelpass
from sensors.frames import GrayImage

__all__ = ["BackgroundConfig", "BackgroundModel", "Segmentation"]


@dataclass(frozen=True, slots=True)
class BackgroundConfig:
    """Tuning of :class:`BackgroundModel`; times in seconds, levels in gray values."""

    base_threshold: float = 14.0
    deviation_factor: float = 3.0
    background_time: float = 3.0
    foreground_time: float = 40.0
    deviation_time: float = 4.0
    relearn_fraction: float = 0.35
    max_shift_fraction: float = 0.2
    register: bool = True
    dark_level: float = 20.0
    bright_level: float = 240.0
    uniform_std: float = 4.0
    shake_suspect: float = 1.15
    shake_gain: float = 0.97
    shake_cells: float = 0.6
    quiet_rate: float = 0.02
    absorb_time: float = 1.0
    still_fraction: float = 0.5
    edge_factor: float = 1.0
    shake_memory: float = 5.0


@dataclass(frozen=True, slots=True)
class Segmentation:
    """The result for one frame.

    ``mask`` is 0/255 in frame coordinates; ``shift`` is the measured camera
    translation in pixels; ``gain`` the lighting factor; ``relearned`` says
    the background was reset on this frame (global change, no people trusted).
    """

    mask: GrayImage
    shift: tuple[float, float]
    gain: float
    relearned: bool


def _translate(image: np.ndarray, tx: int, ty: int, replicate: bool) -> np.ndarray:
    """``image`` moved by whole pixels: ``out[y, x] = image[y - ty, x - tx]``.

    The same as ``warpAffine`` with a pure integer translation (nearest, with
    the border replicated or zero), at the cost of a copy: on a shaking
    camera this runs up to three times per frame.
    """
    h, w = image.shape[:2]
    if abs(tx) >= w or abs(ty) >= h:
        return np.zeros_like(image)
    crop = image[max(0, -ty):h - max(0, ty), max(0, -tx):w - max(0, tx)]
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return np.asarray(cv2.copyMakeBorder(crop, max(0, ty), max(0, -ty), max(0, tx),
                                         max(0, -tx), border, value=0), image.dtype)


def _alpha(seconds: float, fps: float) -> float:
    return 1.0 - math.exp(-1.0 / max(1e-3, seconds * fps))


class BackgroundModel:
    """Running-average background in reference coordinates; see the module docstring."""

    def __init__(self, fps: float, config: BackgroundConfig | None = None) -> None:
        """Create an empty model; the first frame becomes the background."""
        self._cfg = config or BackgroundConfig()
        self._a_bg = _alpha(self._cfg.background_time, fps)
        self._a_fg = _alpha(self._cfg.foreground_time, fps)
        self._a_dev = _alpha(self._cfg.deviation_time, fps)
        self._bg: np.ndarray | None = None
        self._dev: np.ndarray | None = None
        self._small_bg: np.ndarray | None = None
        self._tiny_bg: np.ndarray | None = None
        self._quiet: float | None = None
        self._window: np.ndarray | None = None
        # The half-size background, its windowed copy and that copy's spectrum
        # (None where pixelpass.phase_correlate does not apply) for phase correlation.
        self._windowed: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._prev_mask: GrayImage | None = None
        self._shift = (0.0, 0.0)
        self._updates = 0
        self._prev: np.ndarray | None = None
        self._still: GrayImage | None = None
        self._absorb_frames = max(2, min(250, round(self._cfg.absorb_time * fps)))
        self._edges: np.ndarray | None = None
        # The frame's float32 copies: the current one and the previous (kept
        # for absorption) or the background (after a relearn) hold one each,
        # so a third is free on every frame; and the half-size frame. Fresh
        # arrays of these sizes on every frame went through the allocator
        # (and page faults whenever the heap was trimmed).
        self._floats: list[np.ndarray] = []
        self._small: np.ndarray | None = None
        self._shake_frames = max(1, round(self._cfg.shake_memory * fps))
        self._since_shake = self._shake_frames
        # Compiling the per-pixel passes takes seconds: here, not on a frame.
        pixelpass.warm_up()

    @property
    def background(self) -> GrayImage | None:
        """The current background image (reference coordinates), for tamper checks."""
        return None if self._bg is None else self._bg.astype(np.uint8)

    def contour_evidence(self, gray: GrayImage, mask: GrayImage,
                         box: tuple[float, float, float, float]) -> float | None:
        """How much more the outline of the foreground in ``box`` is an edge of
        ``gray`` than of the background (mean gradient along the mask's
        boundary, frame over background); ``None`` if there is no outline.

        Something really there has its outline in the picture; a *ghost*, a
        place where the background still holds what has gone (a person
        standing there when the background was first learned, a door leaf the
        background absorbed shut that has since opened), has it in the
        background and none in the picture: well below 1. Only a box's
        pixels are looked at, for the few tracks that stand still.
        """
        if self._bg is None or self._bg.shape != gray.shape:
            return None
        rows, cols = gray.shape[:2]
        x, y, w, h = box
        x0, y0 = max(0, int(x) - 2), max(0, int(y) - 2)
        x1, y1 = min(cols, int(x + w) + 3), min(rows, int(y + h) + 3)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        # The mask's outline, one pixel either side of its edge.
        outline = cv2.morphologyEx(mask[y0:y1, x0:x1], cv2.MORPH_GRADIENT,
                                   np.ones((3, 3), np.uint8))
        if not cv2.countNonZero(outline):
            return None
        sums = []
        for image in (np.asarray(gray[y0:y1, x0:x1], np.float32), self._bg[y0:y1, x0:x1]):
            gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
            gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
            sums.append(cv2.mean(cv2.add(np.abs(gx), np.abs(gy)), outline)[0])
        return sums[0] / max(sums[1], 1.0)

    def release(self, box: tuple[float, float, float, float]) -> int:
        """Take the last frame's foreground inside ``box`` (x, y, w, h, frame
        coordinates) into the background at once; returns how many pixels.

        For a ghost the caller has recognised (``contour_evidence``): what the
        background holds there has gone, and the frame shows what is really
        behind it; absorbing it only after ``absorb_time`` of stillness lets
        whoever comes by merge with it first.
        """
        if self._bg is None or self._prev is None or self._prev_mask is None:
            return 0
        rows, cols = self._bg.shape[:2]
        tx, ty = round(self._shift[0]), round(self._shift[1])
        x, y, w, h = box
        x0, y0 = max(0, int(x) + tx), max(0, int(y) + ty)
        x1, y1 = min(cols, int(x + w) + 1 + tx), min(rows, int(y + h) + 1 + ty)
        if x1 <= x0 or y1 <= y0:
            return 0
        fg = self._prev_mask[y0:y1, x0:x1] > 0
        self._bg[y0:y1, x0:x1][fg] = self._prev[y0:y1, x0:x1][fg]
        if self._still is not None:
            self._still[y0:y1, x0:x1][fg] = 0
        self._edges = None
        return int(np.count_nonzero(fg))

    def reset(self, gray: GrayImage) -> None:
        """Forget everything and take ``gray`` as the new background."""
        self._bg = gray.astype(np.float32)
        self._dev = np.full_like(self._bg, 2.0)
        self._edges = None
        self._small_bg = None
        self._tiny_bg = None
        self._shift = (0.0, 0.0)
        self._prev_mask = np.zeros(gray.shape, np.uint8)
        self._prev = None
        self._still = np.zeros(gray.shape, np.uint8)
        self._quiet = None

    def apply(self, gray: GrayImage, protect: GrayImage | None = None) -> Segmentation:
        """Segment one frame and update the model.

        ``protect`` (0/255, frame coordinates) marks where foreground must not
        be absorbed into the background however still it is: the analyzer
        passes the boxes of people it has seen walk, so someone standing at
        the door stays a person while an opened door leaf becomes background.
        """
        if self._bg is None or self._bg.shape != gray.shape:
            self.reset(gray)
            return Segmentation(np.zeros_like(gray), (0.0, 0.0), 1.0, True)
        assert self._dev is not None
        assert self._prev_mask is not None
        if self._unusable(gray):
            # Covered, blinded or black: nothing to see, and the picture after it
            # must be learned afresh (tamper.py reports the condition itself).
            self._bg = None
            return Segmentation(np.zeros_like(gray), (0.0, 0.0), 1.0, True)
        cfg = self._cfg
        shift = self._register(gray) if cfg.register else (0.0, 0.0)
        h, w = gray.shape
        source, moved = gray, (0, 0)
        valid = (0, 0, w, h)
        if shift != (0.0, 0.0):
            # Whole pixels: a bilinear warp cost a quarter of the frame time on a
            # shaking camera, and the half pixel it would add is within what the
            # edge term of the threshold forgives anyway. The frame is moved into
            # the background's coordinates, border replicated.
            moved = (round(shift[0]), round(shift[1]))
            if abs(moved[0]) >= w or abs(moved[1]) >= h:
                source, moved = np.zeros_like(gray), (0, 0)
            # Outside the rectangle (x0, y0)-(x1, y1) the shift brought pixels in
            # from outside the picture: never foreground. (Python's slice rules
            # for the bounds, as the masks were cut before.)
            x0, y0 = math.ceil(max(0.0, -shift[0])), math.ceil(max(0.0, -shift[1]))
            x1, y1 = w - math.ceil(max(0.0, shift[0])), h - math.ceil(max(0.0, shift[1]))
            (x0, x1, _), (y0, y1, _) = slice(x0, x1).indices(w), slice(y0, y1).indices(h)
            valid = (x0, y0, max(x0, x1), max(y0, y1))
        gain = self._gain(source, moved)
        self._since_shake = 0 if shift != (0.0, 0.0) else self._since_shake + 1
        edges: np.ndarray | None = None
        if self._since_shake < self._shake_frames:
            # A shaking camera is never registered exactly (rotation, sub-pixel
            # error): strong edges of the background then flicker by about
            # their gradient times the residual, which is not a person.
            if self._edges is None:
                # |Sobel x| + |Sobel y| of the background, scaled by 1/8 and by
                # edge_factor (compiled, OpenCV's bits).
                self._edges = pixelpass.edges(self._bg, cfg.edge_factor)
            edges = self._edges
        frame = self._free_float(gray.shape)
        mask: GrayImage = np.empty(gray.shape, np.uint8)
        # The mask in the frame's own coordinates (moved back), for the caller.
        out = mask
        back = None
        if shift != (0.0, 0.0):
            out = np.empty(gray.shape, np.uint8)
            back = (out, (round(shift[0]), round(shift[1])))
        found = pixelpass.foreground(source, moved, 1.0 / gain, self._bg, self._dev, edges,
                                     cfg.deviation_factor, cfg.base_threshold, valid,
                                     frame, mask, back)
        if found > cfg.relearn_fraction * mask.size:
            self._bg = frame
            self._edges = None
            self._small_bg = None
            self._tiny_bg = None
            self._prev_mask = np.zeros_like(mask)
            return Segmentation(np.zeros_like(mask), shift, gain, True)
        assert self._still is not None
        prev, self._prev = self._prev, frame
        # Background and deviation follow the frame; still foreground is
        # absorbed (see the note above ``_gain``).
        pixelpass.update(frame, prev, self._bg, self._dev, edges, cfg.deviation_factor,
                         cfg.base_threshold, mask, protect, self._still,
                         (self._a_bg, self._a_fg, self._a_dev), cfg.still_fraction,
                         self._absorb_frames)
        self._prev_mask = mask
        # The background drifts slowly; its half-size copy for registration
        # need not be rebuilt on every frame (that was a tenth of the frame time).
        self._updates += 1
        if self._updates % 8 == 0:
            self._small_bg = None
            self._tiny_bg = None
            self._edges = None
        return Segmentation(out, shift, gain, False)

    def _free_float(self, shape: tuple[int, ...], busy: np.ndarray | None = None) -> np.ndarray:
        """A float32 buffer of ``shape`` that is neither the background, the
        previous frame nor ``busy``."""
        for buf in self._floats:
            if (buf is not self._bg and buf is not self._prev and buf is not busy
                    and buf.shape == shape):
                return buf
        self._floats = [b for b in self._floats if b.shape == shape]
        buf = np.empty(shape, np.float32)
        self._floats.append(buf)
        return buf

    def _unusable(self, gray: GrayImage) -> bool:
        """Whether the picture is too dark, too bright or too uniform to use:
        the mean and standard deviation of a 32 x 24 area-averaged copy."""
        cfg = self._cfg
        h, w = gray.shape
        if w % 32 == 0 and h >= 24:
            # A cheap sufficient test first (that 32 x 24 copy cost a twentieth
            # of the frame time). Each of its columns averages one 1/32 strip of
            # the picture (whole columns when the width divides); rounding moves
            # each of its pixels by at most half a gray level. So its mean is
            # within 0.5 of the picture's, and its standard deviation at least
            # that of the 32 strip means (the spread of group means never
            # exceeds the spread of the members) minus 0.5. When those bounds,
            # with a margin for float error, already clear every limit, the
            # answer is "usable" exactly as the copy would say. (That margin
            # also makes the way the strip statistics are rounded irrelevant.)
            m, s = pixelpass.strip_stats(gray, 32)
            slack = 0.6
            if (cfg.dark_level + slack <= m <= cfg.bright_level - slack
                    and s >= cfg.uniform_std + slack):
                return False
        small = cv2.resize(gray, (32, 24), interpolation=cv2.INTER_AREA)
        mean, std = cv2.meanStdDev(small)
        m, s = float(mean.ravel()[0]), float(std.ravel()[0])
        return m < cfg.dark_level or m > cfg.bright_level or s < cfg.uniform_std

    # Static foreground absorption (in ``pixelpass.update``): foreground that has
    # not changed for ``absorb_time`` becomes background at once. A door leaf
    # that swung open, a bag put down or a curtain that moved differ from the
    # background but stand perfectly still; a person never does for long, and
    # people already seen walking are protected anyway. Without this the opened
    # door stays foreground for tens of seconds and merges with everyone who
    # walks past it.

    def _gain(self, gray: GrayImage, moved: tuple[int, int]) -> float:
        """Lighting factor of the picture (``gray`` moved by ``moved`` into the
        background's coordinates) against the background, on pixels that were
        background in the previous frame, or 1.0 when it is within 2 %."""
        assert self._bg is not None
        assert self._prev_mask is not None
        # Every 4th pixel of every 4th row is plenty for one global factor.
        f, b = pixelpass.lighting(gray, moved, self._bg, self._prev_mask, 4)
        if b < 8.0 or f < 8.0:
            return 1.0
        gain = f / b
        return 1.0 if abs(gain - 1.0) < 0.02 else gain

    def _register(self, gray: GrayImage) -> tuple[float, float]:
        """The camera's translation against the background, or (0, 0).

        Phase correlation follows whatever moves most coherently, and that is
        not always the camera: a door swinging open or a person filling the
        picture drags it by pixels. A candidate shift is therefore accepted
        only if it explains most of the picture better (the difference to the
        background drops in most cells of a 4 x 4 grid), which a real shake
        does and a moving object does not. And phase correlation runs only
        when the picture differs from the background more than it usually
        does, not on every frame.
        """
        assert self._bg is not None
        cfg = self._cfg
        if self._small_bg is None or self._tiny_bg is None:
            self._small_bg = cv2.pyrDown(self._bg)
            self._tiny_bg = self._small_bg
        size = ((gray.shape[0] + 1) // 2, (gray.shape[1] + 1) // 2)
        if self._small is None or self._small.shape != size:
            self._small = np.empty(size, np.float32)
        # cv2.pyrDown of the frame's float32 copy, computed from the 8-bit frame.
        small = pixelpass.pyr_down(gray, self._small)
        tiny = small
        best = self._shift
        cells, score = self._residual(tiny, best)
        if best != (0.0, 0.0):
            still, still_score = self._residual(tiny, (0.0, 0.0))
            if still_score <= score:
                best, cells, score = (0.0, 0.0), still, still_score
        quiet = self._quiet if self._quiet is not None else score
        self._quiet = quiet + cfg.quiet_rate * (min(score, 2.0 * quiet) - quiet)
        if score > cfg.shake_suspect * quiet:
            if self._window is None or self._window.shape != small.shape:
                self._window = cv2.createHanningWindow((small.shape[1], small.shape[0]), cv2.CV_32F)
            # Windowed here rather than by phaseCorrelate (which windows its
            # inputs in place, so it needed copies of both on every call): the
            # background's windowed copy is kept until the half-size background
            # is rebuilt. The same products, so the same result (checked bit
            # for bit on 458 pairs of kiwan frames).
            if self._windowed is None or self._windowed[0] is not self._small_bg:
                windowed = np.asarray(cv2.multiply(self._window, self._small_bg), np.float32)
                self._windowed = (self._small_bg, windowed, pixelpass.spectrum(windowed))
            _, windowed, spectrum = self._windowed
            frame = np.asarray(cv2.multiply(self._window, small), np.float32)
            if spectrum is not None:
                # cv2.phaseCorrelate's result, bit for bit, with the background's
                # transform kept until the background is rebuilt (every 8th frame).
                (dx, dy), response = pixelpass.phase_correlate(spectrum, frame)
            else:
                (dx, dy), response = cv2.phaseCorrelate(windowed, frame, None)
            dx, dy = 2.0 * dx, 2.0 * dy
            limit = cfg.max_shift_fraction * gray.shape[1]
            if response >= 0.05 and 0.5 <= math.hypot(dx, dy) <= limit:
                moved, moved_score = self._residual(tiny, (dx, dy))
                # A shake moves every part of the picture; a door or a person only theirs.
                better = int(np.count_nonzero(moved < cfg.shake_gain * cells))
                if better >= cfg.shake_cells * moved.size and moved_score < score:
                    best = (dx, dy)
        if math.hypot(*best) < 0.5:
            best = (0.0, 0.0)
        self._shift = best
        return best

    def _residual(self, tiny: np.ndarray, shift: tuple[float, float]
                  ) -> tuple[np.ndarray, float]:
        """Mean absolute difference to the background at half size after
        ``shift``, in each cell of a 4 x 4 grid, and the cells' mean
        (``float(cells.mean())``)."""
        assert self._tiny_bg is not None
        w = tiny.shape[1]
        # Whole pixels only: interpolating would smooth the noise away and make
        # any shift look like an improvement on a flat picture.
        sx, sy = round(shift[0] / 2.0), round(shift[1] / 2.0)
        # The border is where a shift brings in pixels from outside the picture.
        b = max(1, w // 16)
        if abs(sx) >= w or abs(sy) >= tiny.shape[0]:
            # Moved wholly out of the picture (only a picture over five times
            # wider than tall can be shifted that far): nothing of it is left.
            tiny, sx, sy = np.zeros_like(tiny), 0, 0
        # cv2.absdiff of the moved image (border replicated) reduced by
        # cv2.resize(diff, (4, 4), interpolation=cv2.INTER_AREA), compiled: no
        # moved copy of the image, and where OpenCV reduces by whole factors no
        # difference image either.
        return pixelpass.residual_grid(tiny, self._tiny_bg, (sx, sy), b, (4, 4))

"""Foreground segmentation that survives shaking cameras and lighting changes.

Per frame, all vectorised in OpenCV (no Python loop over pixels):

1. **Global motion**: the frame's translation against the background is
   measured by phase correlation on a half-size image and the frame is warped
   into the background's coordinates. A hand-held or wind-shaken camera then
   does not turn every edge into foreground. Pixels the shift brings in from
   outside the image are never foreground.
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
   larger difference than flat, quiet floor.
4. **Update**: background pixels follow the frame with a time constant of a
   few seconds; foreground pixels far more slowly, so a person standing in a
   doorway stays foreground for a long time but a parked object or a ghost
   left by the first frame fades out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

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
        self._window: np.ndarray | None = None
        self._prev_mask: GrayImage | None = None
        self._shift = (0.0, 0.0)
        self._updates = 0

    @property
    def background(self) -> GrayImage | None:
        """The current background image (reference coordinates), for tamper checks."""
        return None if self._bg is None else self._bg.astype(np.uint8)

    def reset(self, gray: GrayImage) -> None:
        """Forget everything and take ``gray`` as the new background."""
        self._bg = gray.astype(np.float32)
        self._dev = np.full_like(self._bg, 2.0)
        self._small_bg = None
        self._shift = (0.0, 0.0)
        self._prev_mask = np.zeros(gray.shape, np.uint8)

    def apply(self, gray: GrayImage) -> Segmentation:
        """Segment one frame and update the model."""
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
        frame = gray.astype(np.float32)
        shift = self._register(frame) if self._cfg.register else (0.0, 0.0)
        valid: np.ndarray | None = None
        if shift != (0.0, 0.0):
            m = np.array([[1, 0, -shift[0]], [0, 1, -shift[1]]], np.float32)
            h, w = frame.shape
            frame = np.asarray(
                cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE),
                np.float32,
            )
            valid = np.zeros((h, w), np.uint8)
            x0, y0 = math.ceil(max(0.0, -shift[0])), math.ceil(max(0.0, -shift[1]))
            x1, y1 = w - math.ceil(max(0.0, shift[0])), h - math.ceil(max(0.0, shift[1]))
            valid[y0:y1, x0:x1] = 255
        gain = self._gain(frame)
        if gain != 1.0:
            frame *= 1.0 / gain
        diff = cv2.absdiff(frame, self._bg)
        thr = cv2.addWeighted(self._dev, self._cfg.deviation_factor, self._dev, 0.0,
                              self._cfg.base_threshold)
        mask: GrayImage = np.asarray(cv2.compare(diff, thr, cv2.CMP_GT), np.uint8)
        if valid is not None:
            mask = np.asarray(cv2.bitwise_and(mask, valid), np.uint8)
        if cv2.countNonZero(mask) > self._cfg.relearn_fraction * mask.size:
            self._bg = frame
            self._small_bg = None
            self._prev_mask = np.zeros_like(mask)
            return Segmentation(np.zeros_like(mask), shift, gain, True)
        self._update(frame, diff, mask)
        out = mask
        if shift != (0.0, 0.0):
            h, w = mask.shape
            back = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
            out = np.asarray(cv2.warpAffine(mask, back, (w, h), flags=cv2.INTER_NEAREST), np.uint8)
        return Segmentation(out, shift, gain, False)

    def _unusable(self, gray: GrayImage) -> bool:
        small = cv2.resize(gray, (32, 24), interpolation=cv2.INTER_AREA)
        mean, std = cv2.meanStdDev(small)
        m, s = float(mean.ravel()[0]), float(std.ravel()[0])
        cfg = self._cfg
        return m < cfg.dark_level or m > cfg.bright_level or s < cfg.uniform_std

    def _update(self, frame: np.ndarray, diff: np.ndarray, mask: GrayImage) -> None:
        assert self._bg is not None
        assert self._dev is not None
        background = cv2.bitwise_not(mask)
        cv2.accumulateWeighted(frame, self._bg, self._a_bg, background)
        cv2.accumulateWeighted(frame, self._bg, self._a_fg, mask)
        cv2.accumulateWeighted(diff, self._dev, self._a_dev, background)
        self._prev_mask = mask
        # The background drifts slowly; its half-size copy for registration
        # need not be rebuilt on every frame (that was a tenth of the frame time).
        self._updates += 1
        if self._updates % 8 == 0:
            self._small_bg = None

    def _gain(self, frame: np.ndarray) -> float:
        assert self._bg is not None
        assert self._prev_mask is not None
        quiet = cv2.bitwise_not(self._prev_mask)
        f = cv2.mean(frame, quiet)[0]
        b = cv2.mean(self._bg, quiet)[0]
        if b < 8.0 or f < 8.0:
            return 1.0
        gain = f / b
        return 1.0 if abs(gain - 1.0) < 0.02 else gain

    def _register(self, frame: np.ndarray) -> tuple[float, float]:
        assert self._bg is not None
        if self._small_bg is None:
            self._small_bg = cv2.pyrDown(self._bg)
        small = cv2.pyrDown(frame)
        if self._window is None or self._window.shape != small.shape:
            self._window = cv2.createHanningWindow((small.shape[1], small.shape[0]), cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(self._small_bg, small, self._window)
        if response < 0.05:
            return self._shift
        dx, dy = 2.0 * dx, 2.0 * dy
        limit = self._cfg.max_shift_fraction * frame.shape[1]
        if math.hypot(dx, dy) < 0.5 or math.hypot(dx, dy) > limit:
            return (0.0, 0.0)
        self._shift = (dx, dy)
        return self._shift

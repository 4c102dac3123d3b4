"""Reduce a gray frame to the analyzer's working size, as OpenCV's INTER_AREA does, cheaper.

OpenCV's INTER_AREA is fast for a whole reduction factor (640 -> 320) but
takes a general path for any other one (384 -> 320 on CAVIAR, 832 -> 320 on a
phone video): callgrind counted 4.6 M instructions for one 384 x 288 frame,
half of everything else the analyzer does with it. That path is a separable
weighted sum: each output column takes a few input columns (at most
``ceil(factor) + 1``) with fixed weights, then each output row a few of those
rows. Done here with the same weights (``computeResizeAreaTab`` in OpenCV's
``resize.cpp``), in float32, in the same order (columns, then rows) and
rounded the same way (to nearest, ties to even), it gives the same pixels
(checked frame by frame on the shared and corpus clips and on random images,
tests/sensors/test_shrink.py) for 2.6 M instructions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sensors.frames import GrayImage

__all__ = ["AreaShrink"]


def _taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights, ``(dst, taps)`` each, of INTER_AREA along one axis.

    Unused taps point at index 0 with weight 0 (adding 0.0 changes no sum).
    """
    scale = 1.0 / (dst / src)
    rows: list[list[tuple[int, float]]] = []
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        row: list[tuple[int, float]] = []
        if s1 - f1 > 1e-3:
            row.append((s1 - 1, (s1 - f1) / cell))
        row.extend((s, 1.0 / cell) for s in range(s1, s2))
        if f2 - s2 > 1e-3:
            row.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        rows.append(row)
    n = max(len(r) for r in rows)
    index = np.zeros((dst, n), np.intp)
    weight = np.zeros((dst, n), np.float32)
    for d, row in enumerate(rows):
        for t, (s, w) in enumerate(row):
            index[d, t] = s
            weight[d, t] = w
    return index, weight


class AreaShrink:
    """``cv2.resize(gray, size, interpolation=cv2.INTER_AREA)`` for one input size."""

    def __init__(self, src: tuple[int, int], dst: tuple[int, int]) -> None:
        """Prepare for ``src`` (width, height) frames reduced to ``dst`` (width, height)."""
        self.src = src
        self.dst = dst
        # A whole factor on both axes: OpenCV's own fast path (block means).
        self._whole = src[0] % dst[0] == 0 and src[1] % dst[1] == 0 and (
            src[0] // dst[0] == src[1] // dst[1])
        xi, xw = _taps(src[0], dst[0])
        yi, yw = _taps(src[1], dst[1])
        self._x = [(np.ascontiguousarray(xi[:, t]), np.ascontiguousarray(xw[:, t]))
                   for t in range(xi.shape[1])]
        self._y = [(np.ascontiguousarray(yi[:, t]), np.ascontiguousarray(yw[:, t, None]))
                   for t in range(yi.shape[1])]

    def __call__(self, gray: GrayImage) -> GrayImage:
        """The reduced frame (``gray`` must be ``src`` in size)."""
        if self._whole:
            return np.asarray(cv2.resize(gray, self.dst, interpolation=cv2.INTER_AREA), np.uint8)
        f = gray.astype(np.float32)
        (i, w), *more = self._x
        cols = f[:, i]
        cols *= w
        for i, w in more:
            part = f[:, i]
            part *= w
            cols += part
        (i, w), *more = self._y
        out = cols[i]
        out *= w
        for i, w in more:
            part = cols[i]
            part *= w
            out += part
        return np.asarray(np.rint(out, out=out), np.uint8)

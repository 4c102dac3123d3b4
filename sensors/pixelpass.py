"""The background model's per-pixel work as compiled loops (numba).

Why compiled: done with whole-frame OpenCV calls, one frame took about twenty
of them (absolute difference, threshold, compare, three masked running
averages, absorption counters ...), each reading and writing whole float
frames with Python in between, and the reduction of a 384-px-wide frame to the
320-px working width by ``INTER_AREA`` cost as much again. Here the same
arithmetic runs as two passes over the pixels (:func:`foreground`, then
:func:`update`), plus :func:`pyr_down` for registration and :class:`AreaReducer`
for the reduction.

The arithmetic is OpenCV's, operation for operation, so the decisions stay
the same: ``addWeighted`` and ``accumulateWeighted`` round once through a
fused multiply-add (what OpenCV's SIMD code does on x86 AVX2 and ARM NEON),
``INTER_AREA`` sums its float32 weights in OpenCV's order and rounds half to
even. ``tests/sensors/test_pixelpass.py`` holds each kernel to its OpenCV
counterpart on real frames.

Compiling takes seconds, so :func:`warm_up` compiles every kernel on tiny
arrays (the analyzer calls it when it is built, never in the frame loop) and
numba keeps the machine code on disk: in ``NUMBA_CACHE_DIR`` when set (the
systemd unit points it at the agent's cache directory, since the package
folder is read-only there), else beside this file or in the user's cache
folder. Where none of these is writable the kernels compile afresh in every
process instead (``cache`` falls back to off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import cv2
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from sensors.frames import GrayImage

__all__ = ["AreaReducer", "absdiff_moved", "area_floats", "components", "edges", "foreground",
           "halve_close", "lighting", "person_sizes", "phase_correlate", "pyr_down",
           "residual_grid", "spectrum", "split_parts", "strip_stats", "update", "warm_up"]

F = TypeVar("F", bound=Callable[..., Any])
Floats = np.ndarray[Any, np.dtype[np.float32]]


def _compiled(fn: F) -> F:
    """``njit(cache=True)``, or without the on-disk cache where numba finds no
    writable place for it (it refuses at decoration time)."""
    try:
        return cast(F, njit(cache=True)(fn))
    except RuntimeError:
        return cast(F, njit(fn))


def _compiled_quiet(fn: F) -> F:
    """:func:`_compiled` with numpy's float error model: a division by zero gives
    inf or nan as in C instead of a check and a branch on every division, which
    kept those loops from running several divisions at once."""
    try:
        return cast(F, njit(cache=True, error_model="numpy")(fn))
    except RuntimeError:
        return cast(F, njit(error_model="numpy")(fn))


def _inline(fn: F) -> F:
    """A helper the kernels inline (no call, no separate cache entry)."""
    return cast(F, njit(inline="always")(fn))


def _fma_typing(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` for float32 with one rounding (``llvm.fma.f32``)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(args[0], args[1], args[2])

    return sig, codegen


# Callable from compiled code only.
_fma = cast(Callable[[np.float32, np.float32, np.float32], np.float32],
            intrinsic(_fma_typing))


@_inline
def _threshold(dev: np.float32, factor: np.float32, base: np.float32) -> np.float32:
    # cv2.addWeighted(dev, factor, dev, 0, base) is fma(dev, factor, base) (the
    # edge term, where there is one, is added after, as cv2.add does).
    return _fma(dev, factor, base)


@_compiled
def _foreground(gray: GrayImage, sx: int, sy: int, inv_gain: np.float32,  # pragma: no cover
                bg: Floats, dev: Floats, edges: Floats | None,
                factor: np.float32, base: np.float32,
                x0: int, y0: int, x1: int, y1: int,
                frame: Floats, mask: GrayImage,
                back: GrayImage | None, bx: int, by: int) -> int:
    h, w = gray.shape
    # Columns x with 0 <= x + sx < w read their own source pixel; those left of
    # ``a`` and from ``b`` on read the replicated first or last one.
    a = min(max(-sx, 0), w)
    b = max(min(w - sx, w), a)
    # ``back`` rows no mask row lands on, and the columns of the others, are 0.
    lo = min(max(bx, 0), w)
    hi = max(min(w + bx, w), lo)
    if back is not None:
        for y in range(h):
            if not 0 <= y - by < h:
                back[y, :] = 0
    count = 0
    for y in range(h):
        src = gray[min(max(y + sy, 0), h - 1)]
        out = frame[y]
        # (Slices, not ``src[x + sx]``: numba checks a signed index for
        # wrap-around on every pixel, and that loop does not vectorize.)
        left, middle, right = out[:a], out[a:b], out[b:]
        seg = src[a + sx:b + sx]
        for x in range(left.shape[0]):
            left[x] = np.float32(src[0]) * inv_gain
        for x in range(middle.shape[0]):
            middle[x] = np.float32(seg[x]) * inv_gain
        for x in range(right.shape[0]):
            right[x] = np.float32(src[w - 1]) * inv_gain
        row_in = (y0 <= y) & (y < y1)
        ref = bg[y]
        d = dev[y]
        m = mask[y]
        if edges is None:
            for x in range(w):
                t = _threshold(d[x], factor, base)
                hit = (abs(out[x] - ref[x]) > t) & row_in & (x0 <= x) & (x < x1)
                m[x] = np.uint8(255) if hit else np.uint8(0)
                count += hit
        else:
            e = edges[y]
            for x in range(w):
                t = _threshold(d[x], factor, base) + e[x]
                hit = (abs(out[x] - ref[x]) > t) & row_in & (x0 <= x) & (x < x1)
                m[x] = np.uint8(255) if hit else np.uint8(0)
                count += hit
        if back is not None and 0 <= y + by < h:
            row = back[y + by]
            row[:lo] = 0
            row[hi:] = 0
            # An element loop, not ``row[lo:hi] = m[...]``: numba's slice
            # assignment between two arrays checks them for overlap and copies
            # the source first (an allocation per row: half the pass's time).
            dst = row[lo:hi]
            src_m = m[lo - bx:hi - bx]
            for x in range(dst.shape[0]):
                dst[x] = src_m[x]
    return count


def foreground(gray: GrayImage, shift: tuple[int, int], inv_gain: float,
               bg: Floats, dev: Floats, edges: Floats | None,
               factor: float, base: float, valid: tuple[int, int, int, int],
               frame: Floats, mask: GrayImage,
               back: tuple[GrayImage, tuple[int, int]] | None = None) -> int:
    """The frame in background coordinates, and its foreground; one pass.

    ``frame[y, x] = gray[y + sy, x + sx] * inv_gain`` (border replicated: the
    camera's whole-pixel shift undone, then the lighting gain), and ``mask``
    (0/255) is where ``|frame - bg|`` exceeds ``factor * dev + base`` (plus
    ``edges`` if given), inside the ``valid`` rectangle ``(x0, y0, x1, y1)``
    only (rows ``y0 <= y < y1``, columns ``x0 <= x < x1``). Returns the number of
    foreground pixels. ``frame`` and ``mask`` are written, nothing else, but
    ``back = (image, (dx, dy))``: the mask moved back, ``image[y + dy, x + dx] =
    mask[y, x]`` and 0 where no mask pixel lands.
    """
    image, (bx, by) = (None, (0, 0)) if back is None else back
    return int(_foreground(np.ascontiguousarray(gray), int(shift[0]), int(shift[1]),
                           np.float32(inv_gain), bg, dev, edges,
                           np.float32(factor), np.float32(base),
                           valid[0], valid[1], valid[2], valid[3], frame, mask,
                           image, int(bx), int(by)))


@_compiled
def _update(frame: Floats, prev: Floats | None,  # pragma: no cover
            bg: Floats, dev: Floats, edges: Floats | None,
            factor: np.float32, base: np.float32, mask: GrayImage,
            protect: GrayImage | None, still: GrayImage,
            a_bg: np.float32, a_fg: np.float32, a_dev: np.float32,
            still_fraction: np.float32, absorb_frames: np.uint8) -> None:
    # ``prev``, ``edges`` and ``protect`` given or None are separate compiled
    # versions: numba drops the ``is None`` branches that cannot be taken.
    # (No count of the pixels absorbed: a counter in this loop kept it from
    # being vectorized, 49 instead of 31 us at 320 x 240, and nothing used it.)
    h, w = frame.shape
    for y in range(h):
        for x in range(w):
            f = frame[y, x]
            b = bg[y, x]
            d = dev[y, x]
            fg = mask[y, x] != 0
            # cv2.accumulateWeighted(src, dst, a, mask) is fma(src - dst, a, dst).
            step = f - b
            nb = _fma(step, a_fg if fg else a_bg, b)
            nd = _fma(abs(step) - d, a_dev, d)
            dev[y, x] = d if fg else nd
            if prev is not None:
                # Absorption: still_fraction of the foreground test's threshold
                # (from the deviation before this update) against the change
                # since the previous frame; counters saturate at 255.
                t = _threshold(d, factor, base)
                if edges is not None:
                    t = t + edges[y, x]
                candidate = fg & (abs(f - prev[y, x]) < t * still_fraction)
                if protect is not None:
                    candidate = candidate & (protect[y, x] == 0)
                s = still[y, x]
                n = s + np.uint8(s < 255) if candidate else np.uint8(0)
                ready = n >= absorb_frames
                nb = f if ready else nb
                still[y, x] = np.uint8(0) if ready else n
            bg[y, x] = nb


def update(frame: Floats, prev: Floats | None, bg: Floats, dev: Floats,
           edges: Floats | None, factor: float, base: float, mask: GrayImage,
           protect: GrayImage | None, still: GrayImage,
           rates: tuple[float, float, float], still_fraction: float,
           absorb_frames: int) -> None:
    """Update the background and its deviation from ``frame`` and absorb still
    foreground; one pass, in place on ``bg``, ``dev`` and ``still``.

    Background pixels (``mask`` 0) follow ``frame`` at rate ``rates[0]`` and
    their deviation follows ``|frame - bg|`` at ``rates[2]``; foreground pixels
    follow at ``rates[1]``. If there is a ``prev`` frame, ``still`` counts the
    frames each foreground pixel outside ``protect`` has changed by less than
    ``still_fraction`` of its threshold (as in :func:`foreground`, from the
    deviation before this update); at ``absorb_frames`` the pixel becomes
    ``frame`` and its count restarts.
    """
    a_bg, a_fg, a_dev = rates
    if protect is not None:
        protect = np.ascontiguousarray(protect)
    _update(frame, prev, bg, dev, edges, np.float32(factor), np.float32(base),
            mask, protect, still, np.float32(a_bg), np.float32(a_fg),
            np.float32(a_dev), np.float32(still_fraction), np.uint8(absorb_frames))


@_inline
def _reflect(i: int, n: int) -> int:
    # BORDER_REFLECT_101 (cv2.pyrDown's border): -1 -> 1, n -> n - 2.
    if i < 0:
        return -i
    if i >= n:
        return 2 * n - 2 - i
    return i


@_compiled
def _pyr_down(gray: GrayImage, out: Floats) -> None:  # pragma: no cover
    h, w = gray.shape
    oh, ow = out.shape
    # Per output row: the 5 source rows weighed [1 4 6 4 1] down every column
    # (``v[x + 2]`` is column x), the two reflected columns each side, then the
    # same weights across every other column; in integers, so exact.
    v = np.empty(w + 4, np.int32)
    scale = np.float32(1.0 / 256.0)
    for oy in range(oh):
        c = 2 * oy
        r0, r1, r2 = gray[_reflect(c - 2, h)], gray[_reflect(c - 1, h)], gray[c]
        r3, r4 = gray[_reflect(c + 1, h)], gray[_reflect(c + 2, h)]
        body = v[2:w + 2]
        for x in range(w):
            body[x] = (np.int32(r0[x]) + np.int32(r4[x])
                       + 4 * (np.int32(r1[x]) + np.int32(r3[x])) + 6 * np.int32(r2[x]))
        # BORDER_REFLECT_101: columns -1, -2 are 1, 2; w, w + 1 are w - 2, w - 3.
        v[1], v[0] = v[3], v[4]
        v[w + 2] = v[w]
        v[w + 3] = v[w - 1] if w >= 3 else v[w + 1]
        o = out[oy]
        for ox in range(ow):
            # Unsigned: numba checks a signed index for wrap-around on every use.
            u = np.uintp(2 * ox)
            o[ox] = np.float32(v[u] + v[u + 4] + 4 * (v[u + 1] + v[u + 3]) + 6 * v[u + 2]) * scale


def pyr_down(gray: GrayImage, out: Floats) -> Floats:
    """``cv2.pyrDown(gray.astype(np.float32))`` into ``out`` (shape
    ``((h + 1) // 2, (w + 1) // 2)``), without the float copy: the 5 x 5
    Gaussian of whole gray values is an integer sum over 256, exact in any order."""
    _pyr_down(np.ascontiguousarray(gray), out)
    return out


@_inline
def _reflect1(i: int, n: int) -> int:
    # BORDER_REFLECT_101 one pixel out (cv2.Sobel's default border); a single
    # row or column reflects onto itself.
    if n == 1:
        return 0
    return _reflect(i, n)


@_compiled
def _edges(bg: Floats, out: Floats) -> None:  # pragma: no cover
    # cv2.Sobel(bg, CV_32F, 1, 0, ksize=3, scale=0.125) and (0, 1): OpenCV's
    # separable filter, the row pass first. The derivative taps [-1 0 1] are one
    # subtraction; the smoothing taps [1 2 1] / 8 (the scale goes to the smoothing
    # kernel) are (outer + outer) * 0.125 + centre * 0.25, rounded as written.
    # Then addWeighted(|gx|, 1, |gy|, 1, 0), one rounded sum.
    h, w = bg.shape
    diff = np.empty((h, w), np.float32)
    smooth = np.empty((h, w), np.float32)
    eighth, quarter = np.float32(0.125), np.float32(0.25)
    xm, xp = _reflect1(-1, w), _reflect1(w, w)
    for y in range(h):
        src, d, s = bg[y], diff[y], smooth[y]
        d[0] = src[_reflect1(1, w)] - src[xm]
        s[0] = (src[xm] + src[_reflect1(1, w)]) * eighth + src[0] * quarter
        if w > 1:
            d[w - 1] = src[xp] - src[w - 2]
            s[w - 1] = (src[w - 2] + src[xp]) * eighth + src[w - 1] * quarter
        if w > 2:
            left, mid, right = src[:w - 2], src[1:w - 1], src[2:]
            dd, ss = d[1:w - 1], s[1:w - 1]
            for x in range(w - 2):
                dd[x] = right[x] - left[x]
                ss[x] = (left[x] + right[x]) * eighth + mid[x] * quarter
    for y in range(h):
        up, down = _reflect1(y - 1, h), _reflect1(y + 1, h)
        d0, d1, d2 = diff[up], diff[y], diff[down]
        s0, s2 = smooth[up], smooth[down]
        o = out[y]
        for x in range(w):
            gx = (d0[x] + d2[x]) * eighth + d1[x] * quarter
            gy = s2[x] - s0[x]
            o[x] = abs(gx) + abs(gy)


def edges(bg: Floats, factor: float) -> Floats:
    """The background's edge strength for the shaking-camera threshold term:
    ``cv2.addWeighted(|gx|, factor, |gy|, factor, 0)`` of the 3 x 3 Sobel
    derivatives scaled by 1/8 (a new array). Compiled for ``factor`` 1 (the
    default: OpenCV's two Sobel passes, two absolute values and the sum took
    ~100 us at 320 x 240, each a frame-sized array); other factors run OpenCV."""
    if factor != 1.0:
        gx = cv2.Sobel(bg, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(bg, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        return np.asarray(cv2.addWeighted(np.abs(gx), factor, np.abs(gy), factor, 0.0),
                          np.float32)
    out = np.empty(bg.shape, np.float32)
    _edges(np.ascontiguousarray(bg), out)
    return out


@_inline
def _round_u8(v: np.float32) -> np.uint8:
    # saturate_cast<uchar>(float): round half to even, then clamp.
    return np.uint8(min(max(np.rint(v), np.float32(0.0)), np.float32(255.0)))


@_compiled
def _area(src: GrayImage, xi: np.ndarray, xa: Floats,  # pragma: no cover
          yd: np.ndarray, ys: np.ndarray, ya: Floats, dst: GrayImage, six_five: bool) -> None:
    # OpenCV's ResizeArea_Invoker: per source row, buf[dx] = sum of its weighted
    # source pixels (taps in table order); per destination row, the sum of
    # beta * buf over its source rows, in table order; then rounded.
    ow = xi.shape[1]
    taps = xi.shape[0]
    rowf = np.empty(src.shape[1], np.float32)
    buf = np.empty(ow, np.float32)
    acc = np.zeros(ow, np.float32)
    last = -1
    row = yd[0]
    for j in range(yd.shape[0]):
        if yd[j] != row:
            _store(acc, dst, row)
            row = yd[j]
        if ys[j] != last:
            s = src[ys[j]]
            if six_five:
                _six_five(s, xa[0], xa[1], buf)
            else:
                for x in range(s.shape[0]):
                    rowf[x] = np.float32(s[x])
                i0, a0 = xi[0], xa[0]
                for x in range(ow):
                    buf[x] = rowf[i0[x]] * a0[x]
                for k in range(1, taps):
                    ik, ak = xi[k], xa[k]
                    for x in range(ow):
                        buf[x] = buf[x] + rowf[ik[x]] * ak[x]
            last = ys[j]
        beta = ya[j]
        for x in range(ow):
            acc[x] = acc[x] + beta * buf[x]
    _store(acc, dst, row)


@_inline
def _six_five(s: GrayImage, a0: Floats, a1: Floats, buf: Floats) -> None:
    # The horizontal sums of a 6:5 reduction (384 -> 320 px), where column
    # 5k + j takes source columns 6k + j and 6k + j + 1 (``AreaReducer`` checks
    # its table is exactly that): the same two products and one sum as the
    # table loop, with the six source pixels of a block read once and no
    # index tables (a gather per tap took a third longer).
    for k in range(buf.shape[0] // 5):
        b = 6 * k
        o = 5 * k
        r0, r1, r2 = np.float32(s[b]), np.float32(s[b + 1]), np.float32(s[b + 2])
        r3, r4, r5 = np.float32(s[b + 3]), np.float32(s[b + 4]), np.float32(s[b + 5])
        buf[o] = r0 * a0[o] + r1 * a1[o]
        buf[o + 1] = r1 * a0[o + 1] + r2 * a1[o + 1]
        buf[o + 2] = r2 * a0[o + 2] + r3 * a1[o + 2]
        buf[o + 3] = r3 * a0[o + 3] + r4 * a1[o + 3]
        buf[o + 4] = r4 * a0[o + 4] + r5 * a1[o + 4]


@_inline
def _store(acc: Floats, dst: GrayImage, row: int) -> None:
    out = dst[row]
    for x in range(acc.shape[0]):
        out[x] = _round_u8(acc[x])
        acc[x] = 0.0


@_compiled
def _area_float(src: Floats, xi: np.ndarray, xa: Floats,  # pragma: no cover
                yd: np.ndarray, ys: np.ndarray, ya: Floats, dst: Floats) -> None:
    # :func:`_area` for a float32 image (OpenCV's ResizeArea_Invoker<float, float>):
    # the same sums in the same order, each column's taps summed in table order,
    # and no rounding at the end.
    ow = xi.shape[1]
    taps = xi.shape[0]
    buf = np.empty(ow, np.float32)
    acc = np.zeros(ow, np.float32)
    last = -1
    row = yd[0]
    for j in range(yd.shape[0]):
        if yd[j] != row:
            out = dst[row]
            for x in range(ow):
                out[x] = acc[x]
                acc[x] = 0.0
            row = yd[j]
        if ys[j] != last:
            s = src[ys[j]]
            for x in range(ow):
                v = s[xi[0, x]] * xa[0, x]
                for k in range(1, taps):
                    v = v + s[xi[k, x]] * xa[k, x]
                buf[x] = v
            last = ys[j]
        beta = ya[j]
        for x in range(ow):
            acc[x] = acc[x] + beta * buf[x]
    out = dst[row]
    for x in range(ow):
        out[x] = acc[x]


def _area_table(ssize: int, dsize: int, scale: float) -> list[tuple[int, int, float]]:
    """OpenCV's ``computeResizeAreaTab``: (destination, source, weight) in its order."""
    tab: list[tuple[int, int, float]] = []
    for dx in range(dsize):
        fsx1 = dx * scale
        fsx2 = fsx1 + scale
        cell = min(scale, ssize - fsx1)
        sx1, sx2 = math.ceil(fsx1), math.floor(fsx2)
        sx2 = min(sx2, ssize - 1)
        sx1 = min(sx1, sx2)
        if sx1 - fsx1 > 1e-3:
            tab.append((dx, sx1 - 1, float(np.float32((sx1 - fsx1) / cell))))
        for sx in range(sx1, sx2):
            tab.append((dx, sx, float(np.float32(1.0 / cell))))
        if fsx2 - sx2 > 1e-3:
            tab.append((dx, sx2, float(np.float32(min(min(fsx2 - sx2, 1.0), cell) / cell))))
    return tab


class AreaReducer:
    """``cv2.resize(gray, size, interpolation=cv2.INTER_AREA)`` for a reduction by a
    factor that is not a whole number (384 -> 320 px), pixel for pixel.

    OpenCV runs that case as a scalar loop over its weight tables (a quarter of the
    frame time at 384 x 288); this runs the same float32 sums in the same order,
    compiled. Whole factors (640 -> 320) take OpenCV's own integer fast path, so
    :meth:`applies` says no to them.
    """

    def __init__(self, src_size: tuple[int, int], dst_size: tuple[int, int]) -> None:
        """Tables for ``(width, height)`` -> ``(width, height)``, as OpenCV builds them."""
        (sw, sh), (dw, dh) = src_size, dst_size
        self.src_size, self.dst_size = src_size, dst_size
        # As cv2.resize: the scale is the inverse of the size ratio, in double.
        scale_x, scale_y = 1.0 / (dw / sw), 1.0 / (dh / sh)
        self.scale = (scale_x, scale_y)
        xtab = _area_table(sw, dw, scale_x)
        # (Counted in one pass: counting per column went over the table once per
        # column, milliseconds on the analyzer's first frame.)
        per_column = [0] * dw
        for d, _, _ in xtab:
            per_column[d] += 1
        taps = max(per_column)
        # Every destination column gets ``taps`` terms (tap-major, so each tap
        # is one loop over the columns); missing ones weigh 0 on the column's
        # last source pixel (adding 0.0 changes no float sum).
        # (Unsigned indices: numba checks a signed one for wrap-around on every use.)
        self._xi = np.zeros((taps, dw), np.uintp)
        self._xa = np.zeros((taps, dw), np.float32)
        fill = [0] * dw
        for d, s, a in xtab:
            self._xi[fill[d]:, d] = s
            self._xa[fill[d], d] = a
            fill[d] += 1
        # The 6:5 column pattern (see ``_six_five``), checked on the table itself.
        cols = np.arange(dw)
        self._six_five = bool(
            taps == 2 and dw % 5 == 0 and 6 * (dw // 5) <= sw
            and (self._xi[0] == 6 * (cols // 5) + cols % 5).all()
            and (self._xi[1] == self._xi[0] + 1).all())
        ytab = _area_table(sh, dh, scale_y)
        self._yd = np.array([d for d, _, _ in ytab], np.intp)
        self._ys = np.array([s for _, s, _ in ytab], np.uintp)
        self._ya = np.array([a for _, _, a in ytab], np.float32)

    @staticmethod
    def applies(src_size: tuple[int, int], dst_size: tuple[int, int]) -> bool:
        """Whether OpenCV would take this path (a reduction, not by whole factors)."""
        (sw, sh), (dw, dh) = src_size, dst_size
        scale_x, scale_y = 1.0 / (dw / sw), 1.0 / (dh / sh)
        whole = (abs(scale_x - round(scale_x)) < 2.2e-16
                 and abs(scale_y - round(scale_y)) < 2.2e-16)
        return scale_x >= 1.0 and scale_y >= 1.0 and not whole and src_size != dst_size

    def __call__(self, gray: GrayImage) -> GrayImage:
        """The reduced image (a new array)."""
        dst = np.empty((self.dst_size[1], self.dst_size[0]), np.uint8)
        _area(np.ascontiguousarray(gray), self._xi, self._xa, self._yd, self._ys, self._ya,
              dst, self._six_five)
        return dst

    def floats(self, image: Floats) -> Floats:
        """The reduced float32 image (a new array): OpenCV's float path, the
        same table loop without the rounding."""
        dst = np.empty((self.dst_size[1], self.dst_size[0]), np.float32)
        _area_float(np.ascontiguousarray(image), self._xi, self._xa, self._yd, self._ys,
                    self._ya, dst)
        return dst


_float_reducers: dict[tuple[tuple[int, int], tuple[int, int]], AreaReducer | None] = {}


def area_floats(image: Floats, size: tuple[int, int]) -> Floats:
    """``cv2.resize(image, size, interpolation=cv2.INTER_AREA)`` of a float32 image.

    Where the factor is not whole OpenCV runs its scalar table loop (30 us for
    the registration's 4 x 4 grid of a 140 x 70 difference, at a 320 x 180
    working size), and this runs the same sums compiled (9 us); whole factors
    keep OpenCV's own fast path. The reducer's tables are kept per size."""
    key = ((image.shape[1], image.shape[0]), size)
    if key not in _float_reducers:
        _float_reducers[key] = AreaReducer(*key) if AreaReducer.applies(*key) else None
    reducer = _float_reducers[key]
    if reducer is None:
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)
    return reducer.floats(image)


@_compiled
def _absdiff_moved(image: Floats, bg: Floats, sx: int, sy: int, border: int,  # pragma: no cover
                   out: Floats) -> None:
    h, w = image.shape
    oh, ow = out.shape
    # Output columns x read source column x + border + sx: from ``a`` to ``b``
    # inside the image, the first or last one replicated outside.
    shift = border + sx
    a = min(max(-shift, 0), ow)
    b = max(min(w - shift, ow), a)
    for y in range(oh):
        src = image[min(max(y + border + sy, 0), h - 1)]
        ref = bg[y + border, border:border + ow]
        o = out[y]
        for x in range(a):
            o[x] = abs(src[0] - ref[x])
        # (Slices: numba checks a signed index for wrap-around on every use.)
        seg, ref_in, o_in = src[a + shift:b + shift], ref[a:b], o[a:b]
        for x in range(b - a):
            o_in[x] = abs(seg[x] - ref_in[x])
        for x in range(b, ow):
            o[x] = abs(src[w - 1] - ref[x])


@_compiled
def _residual_grid(image: Floats, bg: Floats, sx: int, sy: int, border: int,  # pragma: no cover
                   out: Floats) -> float:
    # cv2.resize(absdiff_moved(...), (4, 4), INTER_AREA) where the factors are
    # whole (OpenCV's resizeAreaFast, float: each cell's pixels in row order,
    # summed four at a time as sum += ((a + b) + c) + d, the last area % 4 one
    # by one, times 1.f / area), without the difference image. Per row of cells,
    # each cell's differences are copied out in its row order (``vals[c * area
    # + k]``: the k-th pixel of cell c), and the four cells' sums run side by
    # side (independent sums, the same bits). Returns the float32
    # mean of the 16 cells as ndarray.mean gives it (numpy's pairwise sum:
    # eight running sums, then a tree).
    h, w = image.shape
    oh, ow = h - 2 * border, w - 2 * border
    cw, ch = ow // 4, oh // 4
    area = cw * ch
    limit = area - area % 4
    scale = np.float32(1.0) / np.float32(area)
    a = min(max(-(border + sx), 0), ow)
    b = max(min(w - (border + sx), ow), a)
    row_v = np.empty(ow, np.float32)
    vals = np.empty(4 * area, np.float32)
    for cy in range(4):
        for r in range(ch):
            y = cy * ch + r
            src = image[min(max(y + border + sy, 0), h - 1)]
            ref = bg[y + border, border:border + ow]
            # absdiff_moved's row: columns left of ``a`` / from ``b`` on read the
            # replicated first / last source pixel.
            for x in range(a):
                row_v[x] = abs(src[0] - ref[x])
            seg, ref_in, v_in = src[a + border + sx:b + border + sx], ref[a:b], row_v[a:b]
            for x in range(b - a):
                v_in[x] = abs(seg[x] - ref_in[x])
            for x in range(b, ow):
                row_v[x] = abs(src[w - 1] - ref[x])
            for c in range(4):
                part = row_v[c * cw:(c + 1) * cw]
                cell = vals[c * area + r * cw:c * area + (r + 1) * cw]
                for j in range(cw):
                    cell[j] = part[j]
        v0, v1, v2, v3 = vals[:area], vals[area:2 * area], vals[2 * area:3 * area], vals[3 * area:]
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for k in range(limit // 4):
            # (Unsigned indices: numba checks a signed one for wrap-around on every use.)
            q = np.uintp(4 * k)
            s0 = s0 + (((v0[q] + v0[q + 1]) + v0[q + 2]) + v0[q + 3])
            s1 = s1 + (((v1[q] + v1[q + 1]) + v1[q + 2]) + v1[q + 3])
            s2 = s2 + (((v2[q] + v2[q + 1]) + v2[q + 2]) + v2[q + 3])
            s3 = s3 + (((v3[q] + v3[q + 1]) + v3[q + 2]) + v3[q + 3])
        for k in range(limit, area):
            s0 = s0 + v0[k]
            s1 = s1 + v1[k]
            s2 = s2 + v2[k]
            s3 = s3 + v3[k]
        o = out[cy]
        o[0], o[1], o[2], o[3] = s0 * scale, s1 * scale, s2 * scale, s3 * scale
    flat = out.ravel()
    p = np.empty(8, np.float32)
    for j in range(8):
        p[j] = flat[j] + flat[8 + j]
    total = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
    return float(total / np.float32(16))


def residual_grid(image: Floats, bg: Floats, shift: tuple[int, int], border: int,
                  size: tuple[int, int]) -> tuple[Floats, float]:
    """``cells = cv2.resize(absdiff_moved(image, bg, shift, border), size,
    interpolation=cv2.INTER_AREA)`` and ``float(cells.mean())``.

    Where OpenCV reduces by whole factors (its fast area path: a 160 x 120
    half-size picture, border 10, to 4 x 4) this is one compiled pass with
    OpenCV's sums, without the difference image; elsewhere the difference
    and :func:`area_floats`."""
    h, w = image.shape
    oh, ow = h - 2 * border, w - 2 * border
    if (size == (4, 4) and oh > 0 and ow > 0 and ow % 4 == 0 and oh % 4 == 0
            and (ow // 4, oh // 4) != (2, 2)):
        out = np.empty((4, 4), np.float32)
        mean = _residual_grid(image, bg, int(shift[0]), int(shift[1]), int(border), out)
        return out, float(mean)
    cells = area_floats(absdiff_moved(image, bg, shift, border), size)
    return cells, float(np.add.reduce(cells, axis=None) / cells.size)


def absdiff_moved(image: Floats, bg: Floats, shift: tuple[int, int], border: int) -> Floats:
    """``|image moved - bg|`` inside a ``border``-pixel frame: ``[y, x]`` is
    ``|image[y + b + sy, x + b + sx] - bg[y + b, x + b]|``, the image's border
    replicated where that falls outside it."""
    h, w = image.shape
    out = np.empty((h - 2 * border, w - 2 * border), np.float32)
    _absdiff_moved(np.ascontiguousarray(image), bg, int(shift[0]), int(shift[1]),
                   int(border), out)
    return out


@_compiled
def _lighting(gray: GrayImage, sx: int, sy: int, bg: Floats,  # pragma: no cover
              prev_mask: GrayImage, step: int) -> tuple[float, float]:
    h, w = gray.shape
    picture = np.int64(0)
    background = 0.0
    quiet = 0
    for y in range(0, h, step):
        src = gray[min(max(y + sy, 0), h - 1)]
        back = bg[y]
        was = prev_mask[y]
        for x in range(0, w, step):
            if was[x] != 255:
                picture += np.int64(src[min(max(x + sx, 0), w - 1)])
                background += np.float64(back[x])
                quiet += 1
    if quiet == 0:
        return 0.0, 0.0
    scale = 1.0 / quiet
    return picture * scale, background * scale


def lighting(gray: GrayImage, shift: tuple[int, int], bg: Floats, prev_mask: GrayImage,
             step: int) -> tuple[float, float]:
    """Mean of the picture and of ``bg`` over every ``step``-th pixel of every
    ``step``-th row where ``prev_mask`` is not 255 (0.0 if there is none), the
    picture read in background coordinates as in :func:`foreground`.

    As ``cv2.mean(image, mask)``: the pixels summed in row order in double (in
    integers for 8 bits), times the reciprocal of their count.
    """
    picture, background = _lighting(np.ascontiguousarray(gray), int(shift[0]), int(shift[1]),
                                    bg, prev_mask, int(step))
    return float(picture), float(background)


@_compiled
def _strips(gray: GrayImage, count: int) -> tuple[float, float]:  # pragma: no cover
    h, w = gray.shape
    width = w // count
    # Column sums first (whole rows at a time), then the strips' sums.
    columns = np.zeros(w, np.int32)
    for y in range(h):
        row = gray[y]
        for x in range(w):
            columns[x] += np.int32(row[x])
    sums = np.zeros(count, np.int64)
    for k in range(count):
        part = columns[k * width:(k + 1) * width]
        for x in range(width):
            sums[k] += part[x]
    mean = 0.0
    for k in range(count):
        mean += sums[k]
    mean /= count
    var = 0.0
    for k in range(count):
        var += (sums[k] - mean) ** 2
    pixels = float(h * width)
    return mean / pixels, math.sqrt(var / count) / pixels


def strip_stats(gray: GrayImage, count: int) -> tuple[float, float]:
    """Mean and standard deviation of the mean gray levels of ``count`` vertical
    strips of ``gray`` (``w // count`` whole columns each, from the left)."""
    mean, std = _strips(np.ascontiguousarray(gray), count)
    return float(mean), float(std)


@_compiled
def _halve_close(pairs: np.ndarray, level: int, out: GrayImage) -> int:  # pragma: no cover
    oh, ow = out.shape
    # The thresholded half-size mask inside a border of 0s (OpenCV's default
    # border for dilate), then its dilation by the 3 x 3 cross inside a border
    # of 1s (the default border for erode: outside never erodes).
    cells = np.zeros((oh + 2, ow + 2), np.uint8)
    for y in range(oh):
        top, bottom = pairs[2 * y], pairs[2 * y + 1]
        row = cells[y + 1, 1:ow + 1]
        for x in range(ow):
            # Two horizontal neighbours in one 16-bit word (which is the first
            # does not matter to their sum). cv2.resize(INTER_AREA) by exactly 2 on
            # 8 bits is (a + b + c + d + 2) >> 2; cv2.threshold(THRESH_BINARY) on
            # 8 bits compares with the floor of the threshold.
            t, b = np.int32(top[x]), np.int32(bottom[x])
            total = ((t & 255) + (t >> 8) + (b & 255) + (b >> 8) + 2) >> 2
            row[x] = np.uint8(total > level)
    grown = np.ones((oh + 2, ow + 2), np.uint8)
    for y in range(oh):
        # (Slices: numba checks a signed index such as ``x - 1`` for wrap-around.)
        up, left, mid = cells[y, 1:], cells[y + 1], cells[y + 1, 1:]
        right, down = cells[y + 1, 2:], cells[y + 2, 1:]
        row = grown[y + 1, 1:ow + 1]
        for x in range(ow):
            row[x] = up[x] | down[x] | left[x] | mid[x] | right[x]
    count = 0
    for y in range(oh):
        up, left, mid = grown[y, 1:], grown[y + 1], grown[y + 1, 1:]
        right, down = grown[y + 1, 2:], grown[y + 2, 1:]
        o = out[y]
        for x in range(ow):
            v = up[x] & down[x] & left[x] & mid[x] & right[x]
            o[x] = np.uint8(255) * v
            count += int(v)
    return count


@_inline
def _root(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        up = int(parent[i])
        parent[i] = root
        i = up
    return root


@_compiled
def _components(image: GrayImage) -> np.ndarray:  # pragma: no cover
    h, w = image.shape
    # Runs of foreground per row, each labelled and joined (union-find, the
    # smaller label the root) with the runs of the row above it touches
    # (8-connectivity: columns overlapping or diagonal).
    cap = h * ((w + 1) // 2) + 1
    starts = np.empty(cap, np.int32)
    ends = np.empty(cap, np.int32)
    rows = np.empty(cap, np.int32)
    labels = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    parent[0] = 0
    made = 0
    n = 0
    above_lo = above_hi = 0
    for y in range(h):
        row = image[y]
        here = n
        j = above_lo
        x = 0
        while x < w:
            if row[x] == 0:
                x += 1
                continue
            start = x
            while x < w and row[x] != 0:
                x += 1
            label = 0
            # Runs above are in column order: skip those ending left of start - 1.
            while j < above_hi and ends[j] < start:
                j += 1
            k = j
            while k < above_hi and starts[k] <= x:
                r = _root(parent, labels[k])
                if label == 0:
                    label = r
                elif r < label:
                    parent[label] = r
                    label = r
                elif r > label:
                    parent[r] = label
                k += 1
            if label == 0:
                made += 1
                parent[made] = made
                label = made
            starts[n], ends[n], rows[n], labels[n] = start, x, y, label
            n += 1
        above_lo, above_hi = here, n
    far = np.int32(1 << 30)
    left = np.full(made + 1, far, np.int32)
    top = np.full(made + 1, far, np.int32)
    right = np.full(made + 1, -1, np.int32)
    bottom = np.full(made + 1, -1, np.int32)
    area = np.zeros(made + 1, np.int32)
    # OpenCV's BBDT numbers components in the order it meets them scanning
    # 2 x 2 blocks (two rows at a time, left to right): by each component's
    # first block in that order, not its first pixel.
    first = np.full(made + 1, far, np.int32)
    blocks = (w + 1) // 2
    for i in range(n):
        r = _root(parent, labels[i])
        start, end, y = starts[i], ends[i], rows[i]
        left[r] = min(left[r], start)
        right[r] = max(right[r], end - 1)
        top[r] = min(top[r], y)
        bottom[r] = max(bottom[r], y)
        area[r] += end - start
        first[r] = min(first[r], (y // 2) * blocks + start // 2)
    roots = np.empty(made, np.int32)
    count = 0
    for label in range(1, made + 1):
        if parent[label] == label:
            roots[count] = label
            count += 1
    roots = roots[:count]
    order = np.argsort(first[roots])
    stats = np.empty((count, 5), np.int32)
    for i in range(count):
        r = roots[order[i]]
        stats[i, 0], stats[i, 1] = left[r], top[r]
        stats[i, 2], stats[i, 3] = right[r] - left[r] + 1, bottom[r] - top[r] + 1
        stats[i, 4] = area[r]
    return stats


def halve_close(mask: GrayImage, level: float) -> tuple[GrayImage, int]:
    """The blob finder's clean-up of a mask of even width and height, as OpenCV
    computes it: ``cv2.resize`` to half size (``INTER_AREA``), ``cv2.threshold``
    at ``level`` (``THRESH_BINARY`` to 255) and ``cv2.morphologyEx(MORPH_CLOSE)``
    with the 3 x 3 ellipse (a cross), default borders; with its count of
    foreground pixels."""
    h, w = mask.shape
    out = np.empty((h // 2, w // 2), np.uint8)
    pairs = np.ascontiguousarray(mask).view(np.uint16)
    return out, int(_halve_close(pairs, math.floor(level), out))


def components(image: GrayImage) -> np.ndarray:
    """``cv2.connectedComponentsWithStatsWithAlgorithm(image, 8, cv2.CV_32S,
    cv2.CCL_BBDT)``'s statistics without the background's row: one row
    ``(left, top, width, height, area)`` per 8-connected component of the
    non-zero pixels, in OpenCV's order."""
    return np.asarray(_components(np.ascontiguousarray(image)))


@_compiled
def _split_parts(mask: GrayImage, x: float, y: float, w: float, h: float,  # pragma: no cover
                 area: float, aspect: float, scale: int) -> np.ndarray:
    # The column sums of the box (of ``mask`` enlarged ``scale`` times, as
    # cv2.reduce summed them), then the recursive cuts of tracking's former
    # ``_split_columns``: each part at least ``aspect`` times wider than tall
    # (and 8 px) is cut at the first emptiest column of its middle half; leaves
    # left to right. Float arithmetic as Python's: one IEEE double op at a time.
    x0, y0, wi, hi = int(x), int(y), int(w), int(h)
    if scale == 1:
        region = mask[y0:y0 + hi, x0:x0 + wi]
        columns = np.zeros(region.shape[1], np.int64)
        for r in range(region.shape[0]):
            row = region[r]
            for c in range(row.shape[0]):
                columns[c] += np.int64(row[c])
    else:
        region = mask[y0 // scale:(y0 + hi) // scale, x0 // scale:(x0 + wi) // scale]
        cells = np.zeros(region.shape[1], np.int64)
        for r in range(region.shape[0]):
            row = region[r]
            for c in range(row.shape[0]):
                cells[c] += np.int64(row[c])
        columns = np.empty(cells.shape[0] * scale, np.int64)
        for c in range(columns.shape[0]):
            columns[c] = cells[c // scale] * scale
    parts = np.empty((2 * wi + 2, 3), np.float64)
    made = 0
    # A stack of (x, w, area, first column, columns): the right part pushed
    # before the left, so the left one's leaves come out first.
    stack = np.empty((2 * wi + 2, 3), np.float64)
    spans = np.empty((2 * wi + 2, 2), np.int64)
    stack[0, 0], stack[0, 1], stack[0, 2] = x, w, area
    spans[0, 0], spans[0, 1] = 0, columns.shape[0]
    depth = 1
    while depth > 0:
        depth -= 1
        px, pw, pa = stack[depth, 0], stack[depth, 1], stack[depth, 2]
        c0, n = spans[depth, 0], spans[depth, 1]
        if pw < aspect * h or pw < 8:
            parts[made, 0], parts[made, 1], parts[made, 2] = px, pw, pa
            made += 1
            continue
        iw = int(pw)
        lo, hi_ = iw // 4, iw - iw // 4
        hi_ = min(hi_, n)
        if lo >= hi_:
            raise ValueError("attempt to get argmin of an empty sequence")
        best = lo
        for c in range(lo + 1, hi_):
            if columns[c0 + c] < columns[c0 + best]:
                best = c
        cut = best
        # right, then left on top
        stack[depth, 0], stack[depth, 1] = px + cut, pw - cut
        stack[depth, 2] = pa * (iw - cut) / iw
        spans[depth, 0], spans[depth, 1] = c0 + cut, max(n - cut, 0)
        depth += 1
        stack[depth, 0], stack[depth, 1], stack[depth, 2] = px, float(cut), pa * cut / iw
        spans[depth, 0], spans[depth, 1] = c0, min(cut, n)
        depth += 1
    return parts[:made]


def split_parts(mask: GrayImage, box: tuple[float, float, float, float], area: float,
                aspect: float, scale: int) -> list[tuple[float, float, float]]:
    """``(x, w, area)`` of the parts a wide blob is cut into (see
    :func:`sensors.tracking.find_blobs`); each keeps the box's rows."""
    x, y, w, h = box
    parts = _split_parts(np.ascontiguousarray(mask), float(x), float(y), float(w), float(h),
                         float(area), float(aspect), int(scale))
    return [(float(px), float(pw), float(pa)) for px, pw, pa in parts.tolist()]


@_compiled
def _person_sizes(samples: np.ndarray, counts: np.ndarray,  # pragma: no cover
                  floor_fraction: float, min_samples: int, borrow: int, quantile: float,
                  out: np.ndarray) -> None:
    # sensors.people's estimates for every band at once: the floor is
    # ``floor_fraction`` times the median area over all bands (the middle order
    # statistic); per band, the rows at or above the floor (borrowing from the
    # bands ``reach`` either side while there are fewer than ``min_samples``),
    # and each column's k-th smallest, k = int(quantile * (rows - 1)). Order
    # statistics are values, not positions: the same ones np.partition gives.
    n = samples.shape[0]
    total = 0
    for b in range(n):
        total += counts[b]
    every = np.empty(total, np.float64)
    i = 0
    for b in range(n):
        for j in range(counts[b]):
            every[i] = samples[b, j, 0]
            i += 1
    floor = floor_fraction * np.partition(every, total // 2)[total // 2]
    picked = np.empty((total, 3), np.float64)
    for band in range(n):
        rows = 0
        lo, hi = band, band
        reach = 0
        while True:
            rows = 0
            for b in range(lo, hi + 1):
                for j in range(counts[b]):
                    if samples[b, j, 0] >= floor:
                        picked[rows, 0] = samples[b, j, 0]
                        picked[rows, 1] = samples[b, j, 1]
                        picked[rows, 2] = samples[b, j, 2]
                        rows += 1
            reach += 1
            if rows >= min_samples or reach > borrow:
                break
            lo, hi = max(0, band - reach), min(n - 1, band + reach)
        if rows < min_samples:
            out[band, 0] = 0.0
            continue
        k = int(quantile * (rows - 1))
        out[band, 0] = 1.0
        for c in range(3):
            out[band, 1 + c] = np.partition(picked[:rows, c], k)[k]


def person_sizes(samples: np.ndarray, filled: list[int], floor_fraction: float,
                 min_samples: int, borrow: int, quantile: float
                 ) -> list[tuple[float, float, float] | None]:
    """Per band, ``(area, h, w)`` of one person, or ``None`` (see
    :class:`sensors.people.PersonSizeModel`): ``samples[band, :filled[band]]``
    (capped at the memory) are the band's ``(area, h, w)`` samples."""
    memory = samples.shape[1]
    counts = np.array([min(f, memory) for f in filled], np.int64)
    out = np.empty((samples.shape[0], 4), np.float64)
    _person_sizes(samples, counts, float(floor_fraction), int(min_samples), int(borrow),
                  float(quantile), out)
    return [(area, h, w) if ok else None for ok, area, h, w in out.tolist()]


@_compiled_quiet
def _cross_power(ref: Floats, spec: Floats, out: Floats) -> None:  # pragma: no cover
    # OpenCV 5.1's phaseCorrelate after its two DFTs, on CCS-packed spectra:
    # mulSpectrums(ref, spec, conjB) (products in double, rounded to float),
    # magSpectrums (float of the double root) and divSpectrums by it (complex
    # division in double, FLT_EPSILON added to the denominator), entry for
    # entry. The real-only entries (DC and Nyquist of the first and, for an
    # even width, last column) are divided by their magnitude in float.
    h, w = ref.shape
    eps = np.float32(1.1920928955078125e-07)
    deps = np.float64(eps)
    for k in range(2 if w % 2 == 0 else 1):
        c = 0 if k == 0 else w - 1
        for r in range(0, h, max(h - 1, 1)) if h % 2 == 0 else range(1):
            v = ref[r, c] * spec[r, c]
            mag = np.float32(math.sqrt(np.float64(v) * v))
            out[r, c] = v / (mag + eps)
        for j in range(1, h - 1, 2):
            ar, ai, br, bi = ref[j, c], ref[j + 1, c], spec[j, c], spec[j + 1, c]
            pr = np.float64(np.float32(np.float64(ar) * br + np.float64(ai) * bi))
            pi = np.float64(np.float32(np.float64(ai) * br - np.float64(ar) * bi))
            m = np.float64(np.float32(math.sqrt(pr * pr + pi * pi)))
            denom = m * m + deps
            out[j, c] = np.float32(pr * m / denom)
            out[j + 1, c] = np.float32(pi * m / denom)
    # The other columns hold (re, im) pairs. Per row in three loops, so that
    # the roots and divisions (most of the time) run on contiguous arrays,
    # several at once.
    last = w - 1 if w % 2 == 0 else w
    n = (last - 1) // 2
    pr_row = np.empty(n, np.float64)
    pi_row = np.empty(n, np.float64)
    re_out = np.empty(n, np.float32)
    im_out = np.empty(n, np.float32)
    for y in range(h):
        a, b, o = ref[y, 1:last], spec[y, 1:last], out[y, 1:last]
        for i in range(n):
            ar, ai, br, bi = a[2 * i], a[2 * i + 1], b[2 * i], b[2 * i + 1]
            pr_row[i] = np.float64(np.float32(np.float64(ar) * br + np.float64(ai) * bi))
            pi_row[i] = np.float64(np.float32(np.float64(ai) * br - np.float64(ar) * bi))
        for i in range(n):
            pr, pi = pr_row[i], pi_row[i]
            m = np.float64(np.float32(math.sqrt(pr * pr + pi * pi)))
            denom = m * m + deps
            re_out[i] = np.float32(pr * m / denom)
            im_out[i] = np.float32(pi * m / denom)
        for i in range(n):
            o[2 * i] = re_out[i]
            o[2 * i + 1] = im_out[i]


@_compiled
def _peak(surface: Floats, top: float) -> tuple[float, float, float]:  # pragma: no cover
    # fftShift (the quadrant swap: row y of the swapped surface is row
    # (y + h/2) mod 2(h/2), its columns the right half, then the left, then an
    # odd last one), the first ``top`` (its maximum) in row order there as
    # minMaxLoc finds it, and weightedCentroid's 5 x 5 sums in double, row by row.
    h, w = surface.shape
    xm, ym = w >> 1, h >> 1
    best = np.float32(top)
    px = py = -1
    for y in range(h):
        row = surface[(y + ym) % (2 * ym) if y < 2 * ym else y]
        right, left, odd = row[xm:2 * xm], row[:xm], row[2 * xm:]
        for x in range(xm):
            if right[x] == best:
                px, py = x, y
                break
        if px < 0:
            for x in range(xm):
                if left[x] == best:
                    px, py = x + xm, y
                    break
        if px < 0:
            for x in range(odd.shape[0]):
                if odd[x] == best:
                    px, py = x + 2 * xm, y
                    break
        if px >= 0:
            break
    cx = cy = total = 0.0
    for y in range(max(py - 2, 0), min(py + 2, h - 1) + 1):
        sy = (y + ym) % (2 * ym) if y < 2 * ym else y
        for x in range(max(px - 2, 0), min(px + 2, w - 1) + 1):
            sx = (x + xm) % (2 * xm) if x < 2 * xm else x
            v = np.float64(surface[sy, sx])
            cx += x * v
            cy += y * v
            total += v
    return cx, cy, total


def spectrum(image: Floats) -> Floats | None:
    """The DFT :func:`phase_correlate` takes for its reference, or ``None`` for a
    size it does not handle (odd, or not a fast DFT size, which OpenCV pads):
    there ``cv2.phaseCorrelate`` itself must run."""
    h, w = image.shape
    # Odd sizes were not matched to OpenCV bit for bit (its fftShift and CCS
    # layout at odd sizes were not probed): cv2.phaseCorrelate runs there.
    if (h % 2 or w % 2 or cv2.getOptimalDFTSize(h) != h
            or cv2.getOptimalDFTSize(w) != w):
        return None
    return np.asarray(cv2.dft(image), np.float32)


def phase_correlate(reference: Floats, image: Floats) -> tuple[tuple[float, float], float]:
    """``cv2.phaseCorrelate(ref, image, None)`` (OpenCV 5.1, bit for bit) given
    ``spectrum(ref)``: the reference's DFT, which changes only when the
    background is rebuilt, is not recomputed on every call, and the steps
    between and after the transforms (about half of OpenCV's time here) run
    compiled."""
    h, w = image.shape
    power = np.empty_like(reference)
    _cross_power(reference, np.asarray(cv2.dft(image), np.float32), power)
    surface = np.asarray(cv2.idft(power), np.float32)
    # The maximum by OpenCV (vectorized); where it first occurs in the swapped
    # order, compiled (the same location minMaxLoc finds on the swapped surface).
    _, top, _, _ = cv2.minMaxLoc(surface)
    cx, cy, total = _peak(surface, top)
    # weightedCentroid's response before the epsilon; phaseCorrelate divides it by M * N.
    response = total / (h * w)
    total += 2.220446049250313e-16
    return (w / 2.0 - cx / total, h / 2.0 - cy / total), response


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel with the argument types
    the background model uses, on tiny arrays: a first call in the frame loop
    would otherwise stall it for seconds."""
    gray = np.zeros((6, 8), np.uint8)
    floats = np.zeros(gray.shape, np.float32)
    for edge_term in (None, floats):
        for back in (None, (np.empty_like(gray), (1, -1))):
            foreground(gray, (0, 0), 1.0, floats, floats.copy(), edge_term, 3.0, 14.0,
                       (0, 0, 8, 6), floats.copy(), np.empty_like(gray), back)
        for prev in (None, floats):
            for protect in (None, gray):
                update(floats.copy(), prev, floats.copy(), floats.copy(), edge_term, 3.0, 14.0,
                       gray, protect, gray.copy(), (0.1, 0.01, 0.1), 0.5, 25)
    pyr_down(gray, np.empty((3, 4), np.float32))
    strip_stats(gray, 4)
    lighting(gray, (0, 0), floats, gray, 4)
    AreaReducer((12, 6), (10, 5))(np.zeros((6, 12), np.uint8))
    area_floats(floats, (3, 4))
    edges(floats, 1.0)
    person_sizes(np.ones((2, 3, 3)), [2, 5], 0.3, 1, 1, 0.5)
    residual_grid(np.zeros((20, 20), np.float32), np.zeros((20, 20), np.float32), (1, 0), 2,
                  (4, 4))
    for scale in (1, 2):
        split_parts(np.zeros((6, 24), np.uint8), (0.0, 0.0, 24.0, 6.0), 10.0, 1.25, scale)
    absdiff_moved(floats, floats, (1, 0), 1)
    components(halve_close(np.zeros((6, 8), np.uint8), 140.25)[0])
    ref = spectrum(np.ones((6, 8), np.float32))
    assert ref is not None
    phase_correlate(ref, np.ones((6, 8), np.float32))

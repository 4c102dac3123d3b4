"""Blobs from a foreground mask, and a multi-object tracker over them.

Blobs: morphological clean-up, connected components, then fragments of one
person (head, torso and legs split by a shirt the colour of the wall) are
joined when they overlap horizontally and nearly touch vertically, and
blobs much wider than tall (people side by side) are split at the deepest
valley of their column profile.

Tracks: a constant-velocity prediction, greedy gated association by
distance relative to the track's size (no scipy, a handful of objects per
frame), hysteresis on both ends (a track is *confirmed* after several hits
and *dropped* only after it was missed for a while, coasting on its
prediction meanwhile). When two tracks fall into one blob (people meeting),
the unmatched one is carried by that blob, keeping its sideways offset, so
a pair walking through a door together still yields two tracks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from sensors import pixelpass
from sensors.frames import GrayImage

__all__ = ["Blob", "BlobConfig", "PersonHeight", "Track", "Tracker", "TrackerConfig", "find_blobs"]


@dataclass(frozen=True, slots=True)
class Blob:
    """A foreground region: bounding box in pixels and area."""

    x: float
    y: float
    w: float
    h: float
    area: float

    @property
    def cx(self) -> float:
        """Horizontal centre."""
        return self.x + self.w / 2.0

    @property
    def cy(self) -> float:
        """Vertical centre of the box."""
        return self.y + self.h / 2.0

    @property
    def bottom(self) -> float:
        """Lowest row (the feet in a front view)."""
        return self.y + self.h


@dataclass(frozen=True, slots=True)
class BlobConfig:
    """Blob extraction tuning; sizes relative to the frame."""

    min_area: float = 0.002
    join_gap: float = 0.04
    split_aspect: float = 1.25
    open_size: int = 3
    close_size: int = 7
    reduce: int = 2
    reduce_fill: float = 0.55
    reduced_open: int = 1
    join_height: float = 1.4


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


PersonHeight = Callable[[float], float | None]


def _join(
    blobs: list[Blob], gap: float, person_height: PersonHeight | None, limit: float
) -> list[Blob]:
    """Merge boxes that overlap horizontally and are less than ``gap`` apart
    vertically, unless the result would be taller than ``limit`` people there
    (then they are two people one behind the other, or a person and speckle)."""
    # Runs on every pair of blobs of every frame: the box edges are read once
    # per blob, and ``min``/``max`` of two floats are conditional expressions
    # (same value, a builtin call less each). The person-height test, the only
    # costly one, is left for pairs that pass the cheap geometric ones.
    merged = True
    while merged and len(blobs) > 1:
        merged = False
        n = len(blobs)
        for i in range(n):
            a = blobs[i]
            ax, ay, aw = a.x, a.y, a.w
            ar, ab = ax + aw, ay + a.h
            for j in range(i + 1, n):
                b = blobs[j]
                bx, by, bw = b.x, b.y, b.w
                br, bb = bx + bw, by + b.h
                x0 = bx if bx < ax else ax
                x1 = br if br > ar else ar
                narrow = bw if bw < aw else aw
                overlap = (br if br < ar else ar) - (bx if bx > ax else ax)
                vgap = (by if by > ay else ay) - (bb if bb < ab else ab)
                if not (overlap > 0.5 * narrow and vgap < gap
                        and (x1 - x0) < 1.3 * (bw if bw > aw else aw)):
                    continue
                y0 = by if by < ay else ay
                y1 = bb if bb > ab else ab
                if person_height is not None:
                    tallest = person_height(y1)
                    if tallest is not None and (y1 - y0) > limit * tallest:
                        continue
                blobs[i] = Blob(x0, y0, x1 - x0, y1 - y0, a.area + b.area)
                del blobs[j]
                merged = True
                break
            if merged:
                break
    return blobs


def _split(mask: np.ndarray, blob: Blob, aspect: float, scale: int = 1) -> list[Blob]:
    """Split a blob wider than ``aspect`` times its height at the emptiest column.

    ``mask`` is the foreground enlarged ``scale`` times by nearest neighbour
    (``scale`` a power of two, the blob's edges multiples of it): the column
    sums are those of the enlarged mask, without building it. Each part wider
    than ``aspect`` times its height is split again (the parts keep the box's
    rows, and take a run of its columns). Compiled (``pixelpass.split_parts``):
    the column sums and every cut in one call.
    """
    if blob.w < aspect * blob.h or blob.w < 8:
        return [blob]
    y, h = blob.y, blob.h
    return [Blob(x, y, w, h, area) for x, w, area in pixelpass.split_parts(
        mask, (blob.x, y, blob.w, h), blob.area, aspect, scale)]


def find_blobs(
    mask: GrayImage,
    config: BlobConfig | None = None,
    person_height: PersonHeight | None = None,
    pieces: Callable[[list[Blob]], None] | None = None,
) -> list[Blob]:
    """Person-sized foreground regions of a 0/255 mask.

    ``person_height(bottom_row)``, when given, is one person's height in
    pixels with the feet at that row (``None`` if unknown): fragments are not
    joined into something taller than a person. ``pieces``, when given, is
    shown the connected pieces of foreground before they are joined.

    Clean-up and connected components run on the mask reduced by
    ``cfg.reduce`` (a cell is foreground when ``cfg.reduce_fill`` of it is):
    the reduction itself removes speckle the way an opening would, and the
    labelling, the costliest step on a noisy mask, gets that many times fewer
    pixels. Boxes are returned in the mask's own pixels.
    """
    cfg = config or BlobConfig()
    h, w = mask.shape
    k = cfg.reduce if min(w, h) >= 60 * cfg.reduce else 1
    close = max(3, cfg.close_size // k) | 1 if k > 1 else cfg.close_size
    rows: list[list[int]]
    clean: np.ndarray
    if k == 2 and w % 2 == 0 and h % 2 == 0 and cfg.reduced_open <= 1 and close == 3:
        # The usual case, compiled (sensors.pixelpass): the same clean-up and
        # the same components in the same order as the OpenCV calls below, in a
        # third of their time.
        clean, left = pixelpass.halve_close(mask, 255 * cfg.reduce_fill)
        if not left:
            return []
        rows = pixelpass.components(clean).tolist()
    else:
        if k > 1:
            small = cv2.resize(mask, (w // k, h // k), interpolation=cv2.INTER_AREA)
            _, clean = cv2.threshold(small, 255 * cfg.reduce_fill, 255, cv2.THRESH_BINARY)
            if cfg.reduced_open > 1:
                square = np.ones((cfg.reduced_open, cfg.reduced_open), np.uint8)
                clean = cv2.morphologyEx(clean, cv2.MORPH_OPEN, square)
        else:
            clean = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _kernel(cfg.open_size))
        clean = np.asarray(cv2.morphologyEx(clean, cv2.MORPH_CLOSE, _kernel(close)), np.uint8)
        if not cv2.countNonZero(clean):
            # Nothing left after the clean-up (most frames of a quiet doorway):
            # labelling an empty mask still cost about as much as a full one.
            return []
        # BBDT, not the default Spaghetti: both scan 2 x 2 blocks in raster order,
        # so labels come out in the same order with the same stats, but with stats
        # OpenCV 5's Spaghetti took ~5x longer here (~300 vs ~60 us at 160 x 120).
        count, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
            clean, 8, cv2.CV_32S, cv2.CCL_BBDT)
        rows = stats[1:count].tolist()
    # Thin slivers are registration residue along strong edges, never body parts;
    # letting them join would glue distant people together.
    kk = float(k)
    area_scale = kk * kk
    min_fragment = 0.25 * cfg.min_area * w * h
    min_side = max(3.0, round(0.02 * h))
    # In Python floats, the same products as numpy's float64 ones (whole
    # numbers times 1, 2, 4): a few rows, where numpy's calls cost more.
    blobs = []
    for x, y, bw, bh, area in rows:
        fw, fh, fa = bw * kk, bh * kk, area * area_scale
        if fa >= min_fragment and (fw if fw < fh else fh) >= min_side:
            blobs.append(Blob(x * kk, y * kk, fw, fh, fa))
    if pieces is not None:
        pieces(blobs)
    blobs = _join(blobs, cfg.join_gap * h, person_height, cfg.join_height)
    blobs = [b for b in blobs if b.area >= cfg.min_area * w * h]
    if not any(b.w >= cfg.split_aspect * b.h for b in blobs):
        return blobs
    scale = 1
    if k > 1 and k & (k - 1) == 0 and w % k == 0 and h % k == 0:
        # Boxes come from the reduced mask scaled by k (joins are unions of
        # such boxes), so their edges are multiples of k, and the mask the
        # parts are measured on is the reduced one enlarged k times (nearest,
        # an exact k x k copy of each cell when k is a power of two): its
        # column sums are the reduced mask's, times k, each repeated k times.
        # Summed from the reduced mask directly: no full-size mask to build.
        scale = k
    elif k > 1:
        clean = np.asarray(cv2.resize(clean, (w, h), interpolation=cv2.INTER_NEAREST), np.uint8)
    return [part for b in blobs for part in _split(clean, b, cfg.split_aspect, scale)]


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tracker tuning; times in seconds."""

    confirm_time: float = 0.15
    coast_time: float = 0.6
    gate: float = 0.8
    min_gate_px: float = 12.0
    velocity_smoothing: float = 0.5
    max_size_change: float = 0.5
    carry_time: float = 4.0
    carry_fill: float = 0.8
    tentative_misses: int = 2


@dataclass(slots=True)
class Track:
    """One object followed over frames; positions are the box centre and size."""

    id: int
    cx: float
    cy: float
    w: float
    h: float
    first_frame: int
    last_frame: int
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    missed: int = 0
    shared: bool = False
    carried: int = 0
    blob: Blob | None = None
    parent: int | None = None
    history: list[tuple[int, float, float, float, float]] = field(default_factory=list)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` of the current box."""
        return self.cx - self.w / 2, self.cy - self.h / 2, self.w, self.h

    def predicted(self) -> tuple[float, float]:
        """Where the centre should be on the next frame."""
        return self.cx + self.vx, self.cy + self.vy


class Tracker:
    """Greedy multi-object tracker with hysteresis; see the module docstring."""

    def __init__(self, fps: float, config: TrackerConfig | None = None) -> None:
        """Create a tracker for a stream at ``fps`` frames per second."""
        self._cfg = config or TrackerConfig()
        self._confirm_hits = max(2, round(self._cfg.confirm_time * fps))
        self._max_missed = max(2, round(self._cfg.coast_time * fps))
        self._max_carried = max(2, round(self._cfg.carry_time * fps))
        self._next_id = 1
        self.tracks: list[Track] = []

    def is_confirmed(self, track: Track) -> bool:
        """Seen often enough to be believed."""
        return track.hits >= self._confirm_hits

    def update(self, frame: int, blobs: list[Blob], *, allow_new: bool = True) -> list[Track]:
        """Advance all tracks by one frame; returns the tracks dropped on this frame."""
        pairs = self._associate(blobs)
        used_tracks = {t for t, _ in pairs}
        used_blobs = {b for _, b in pairs}
        # Where each confirmed track was before this frame: a new blob lying
        # there is part of what that track followed (a group parting). Only
        # needed when a blob is left over for a new track (most frames have
        # none); association has not moved any track yet.
        before: list[tuple[int, tuple[float, float, float, float]]] = []
        if allow_new and len(used_blobs) < len(blobs):
            before = [(t.id, t.box) for t in self.tracks if self.is_confirmed(t)]
        for ti, bi in pairs:
            self._correct(self.tracks[ti], blobs[bi], frame)
        load = {id(blobs[bi]): self.tracks[ti].w for ti, bi in pairs}
        # Longest-lived first: when a blob can hold no more, the newest go.
        waiting = sorted((ti for ti in range(len(self.tracks)) if ti not in used_tracks),
                         key=lambda ti: self.tracks[ti].first_frame)
        matched = [blobs[b] for _, b in pairs]
        for ti in waiting:
            track = self.tracks[ti]
            host = self._host(track, matched, load)
            if host is not None:
                load[id(host)] += track.w
                self._carry(track, host, frame)
            else:
                track.cx, track.cy = track.predicted()
                track.missed += 1
                track.shared = False
                track.blob = None
        # A track not yet confirmed is dropped after a miss or two: it was speckle.
        dropped: list[Track] = []
        kept: list[Track] = []
        for t in self.tracks:
            (dropped if t.missed > self._patience(t) else kept).append(t)
        self.tracks = kept
        if allow_new:
            live = [t for t in self.tracks if t.missed == 0]
            for bi, blob in enumerate(blobs):
                if bi not in used_blobs and not self._covered(blob, live):
                    self._start(blob, frame, self._parent(blob, before))
        return dropped

    @staticmethod
    def _covered(blob: Blob, live: list[Track]) -> bool:
        """Mostly inside a box already followed: a fragment of someone tracked."""
        for t in live:
            x, y, w, h = t.box
            ix = min(blob.x + blob.w, x + w) - max(blob.x, x)
            iy = min(blob.bottom, y + h) - max(blob.y, y)
            if ix > 0 and iy > 0 and ix * iy > 0.5 * blob.w * blob.h:
                return True
        return False

    def _patience(self, track: Track) -> int:
        return self._max_missed if self.is_confirmed(track) else self._cfg.tentative_misses

    def _associate(self, blobs: list[Blob]) -> list[tuple[int, int]]:
        """Greedy assignment on a gated cost matrix (distance relative to the
        track's size, plus a penalty for a change of height).

        Only pairs within the gate along both axes can be within it by
        distance (``hypot`` is never below either leg), so most pairs are
        dropped in Python with a subtraction; numpy's ``hypot`` and ``log``
        then run once each on the few left (the same functions on the same
        values as over the whole matrix, so the same bits: a dozen numpy
        calls on the whole small matrix cost more than the matrix).
        """
        if not self.tracks or not blobs:
            return []
        cfg = self._cfg
        min_gate, gate_k = cfg.min_gate_px, cfg.gate
        ends = [(bl.x + bl.w / 2.0, bl.y + bl.h / 2.0, bl.h) for bl in blobs]
        pairs_t: list[int] = []
        pairs_b: list[int] = []
        legs_x: list[float] = []
        legs_y: list[float] = []
        gates: list[float] = []
        ratios: list[float] = []
        for a, tr in enumerate(self.tracks):
            px, py, th = tr.cx + tr.vx, tr.cy + tr.vy, tr.h
            side = tr.w if tr.w > th else th
            g = gate_k * side
            if g < min_gate:
                g = min_gate
            hh = th if th > 1.0 else 1.0
            for c, (bx, by, bh) in enumerate(ends):
                dx, dy = bx - px, by - py
                if -g < dx < g and -g < dy < g:
                    pairs_t.append(a)
                    pairs_b.append(c)
                    legs_x.append(dx)
                    legs_y.append(dy)
                    gates.append(g)
                    # A blob of a very different height is another object or a
                    # merge; taking it would teleport the track's feet across the line.
                    ratios.append((bh if bh > 1.0 else 1.0) / hh)
        if not pairs_t:
            return []
        # numpy's hypot and log, each called once on the candidates (contiguous
        # float64, as over the whole matrix before: the same bits); everything
        # after them is one IEEE operation at a time, the same in Python floats
        # as in numpy's, without a dozen numpy calls on a handful of values.
        legs = np.array((legs_x, legs_y, ratios))
        dist = np.hypot(legs[0], legs[1]).tolist()
        logs = np.log(legs[2]).tolist()
        limit = cfg.max_size_change
        ranked: list[tuple[float, int]] = []
        for k, g in enumerate(gates):
            d = dist[k]
            size = abs(logs[k])
            if d < g and size < limit:
                ranked.append((d / g + 0.5 * size, k))
        # By cost, ties in row-major order of (track, blob), as argsort(kind="stable")
        # over the matrix's nonzero entries was.
        ranked.sort()
        pairs: list[tuple[int, int]] = []
        seen_t: set[int] = set()
        seen_b: set[int] = set()
        for _, k in ranked:
            a, c = pairs_t[k], pairs_b[k]
            if a not in seen_t and c not in seen_b:
                pairs.append((a, c))
                seen_t.add(a)
                seen_b.add(c)
        return pairs

    def _host(self, track: Track, matched: list[Blob], load: dict[int, float]) -> Blob | None:
        """The blob a lost track has merged into, if it is wide enough to hold
        one more person and the track has not been carried for too long."""
        if not self.is_confirmed(track) or track.carried >= self._max_carried:
            return None
        px, py = track.predicted()
        th, tw, fill = track.h, track.w, self._cfg.carry_fill
        # Cheapest tests first (all are pure): the predicted centre inside the box.
        for b in matched:
            if (b.x <= px <= b.x + b.w and b.y <= py <= b.bottom
                    and 0.6 * th <= b.h <= 1.8 * th and b.w > 0.7 * tw
                    and b.w >= fill * (load.get(id(b), 0.0) + tw)):
                return b
        return None

    def _carry(self, track: Track, host: Blob, frame: int) -> None:
        """Move a track that merged into another's blob with that blob's vertical motion."""
        px, _ = track.predicted()
        track.cx = min(max(px, host.x), host.x + host.w)
        new_cy = host.cy
        track.vy = new_cy - track.cy
        track.cy = new_cy
        track.vx *= 0.5
        track.h = host.h
        track.shared = True
        track.carried += 1
        track.blob = host
        track.missed = 0
        track.last_frame = frame
        track.history.append((frame, track.cx, track.cy, track.w, track.h))

    def _correct(self, track: Track, blob: Blob, frame: int) -> None:
        k = self._cfg.velocity_smoothing
        track.vx = (1 - k) * track.vx + k * (blob.cx - track.cx)
        track.vy = (1 - k) * track.vy + k * (blob.cy - track.cy)
        track.cx, track.cy, track.w, track.h = blob.cx, blob.cy, blob.w, blob.h
        track.hits += 1
        track.carried = 0
        track.missed = 0
        track.shared = False
        track.blob = blob
        track.last_frame = frame
        track.history.append((frame, track.cx, track.cy, track.w, track.h))

    @staticmethod
    def _parent(blob: Blob, before: list[tuple[int, tuple[float, float, float, float]]]
                ) -> int | None:
        """The confirmed track whose box held most of ``blob`` on the previous
        frame: the blob is someone who walked inside that track's blob until
        now (people parting after walking together, a group splitting)."""
        best, best_share = None, 0.5
        area = max(blob.w * blob.h, 1.0)
        for tid, (x, y, w, h) in before:
            ix = min(blob.x + blob.w, x + w) - max(blob.x, x)
            iy = min(blob.bottom, y + h) - max(blob.y, y)
            if ix > 0 and iy > 0 and ix * iy / area > best_share:
                best, best_share = tid, ix * iy / area
        return best

    def _start(self, blob: Blob, frame: int, parent: int | None = None) -> None:
        track = Track(self._next_id, blob.cx, blob.cy, blob.w, blob.h, frame, frame, blob=blob,
                      parent=parent)
        track.history.append((frame, blob.cx, blob.cy, blob.w, blob.h))
        self._next_id += 1
        self.tracks.append(track)

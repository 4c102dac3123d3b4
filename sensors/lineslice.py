"""People crossing the line as one long blob, counted by the foreground moving over it.

Why: people who cross close behind each other (a boarding crush at a bus
door, a queue on an escalator, touching umbrellas seen from above) make one
foreground column lying through the line for seconds. The tracker follows
blobs, and a column's reference point never changes side, so nobody is
counted (issue 14, session 8's class A). What crosses can still be measured
without identities: foreground area moving over the line. Session 10's
``flux`` branch measured it with Farneback flow on the gray strip along the
line and found crushes, but textureless bodies (umbrellas) gave little flow,
one person's flow had to be calibrated with a floor that decided the result,
and it cost 15-30 % of the analyzer's time.

Here the flow is that of the foreground *mask* itself, so texture does not
matter and one person's amount is, seen from above, one person's blob area,
which the analyzer learns anyway (:mod:`sensors.people`). A strip of the mask
along the line is sampled every frame (``rows`` lines parallel to the line,
one pixel apart; nearest-pixel gather, O(line length)). Per lane (``lane``
pixels along the line) the strip's rows are matched against the strip of
``lag`` seconds before, shifted across the line by up to ``reach`` pixels
(1-D block matching on the mask: where the column is wider or narrower, at
a neck between two people, an umbrella's rim, the mask's edges move with
the people). The best shift (sub-pixel) is the lane's speed across the line;
a lane whose mask has no edge inside the strip (all foreground, or none)
gives no speed and keeps its last one for ``hold`` seconds while it stays
occupied. Foreground on the line times that speed is the area that crossed
the line on that frame; it is netted per lane over an *episode* (the line
busy; ending ``end`` seconds after it is clear), so a standing crowd's
jitter cancels while people going opposite ways in different lanes do not.

One person's area (the unit) is the area that went over with people the
tracker reported cleanly (one track near the line, nobody else reported
within a second), median of the last few once ``samples`` were seen; until
then one person's blob area at the line as the analyzer learned it (or the
pieces' area before anyone walked alone). Seen from the front only the feet
cross the line and a person's amount is a fraction of their blob: the
learned unit is then far below the blob area, and the counter trusts it
only within ``agree`` of that area (a view where the mask's motion over the
line does not measure people counts nothing here: the tracker does well
there). Each time the episode's netted area one way passes another
``share`` of a unit beyond what was counted, a crossing is dated (that
frame: when the middle of the person went over), and ``wait`` seconds
later it is reported unless the tracker has reported as many passages that
way in the episode, or unless it comes within ``gap`` seconds of a passage
that way (the tracker's or one added): people go through one after the other,
while a crush shuffling on a step moves a person's area back and forth over
the line several times a second.

Only the strip is touched, and only while foreground lies on it: a quiet
door costs one gather and one test per frame.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from firmware_config.scene import PixelLine
from sensors.pixelpass import _compiled

__all__ = ["Crossing", "LineSlice", "SliceConfig"]

Direction = Literal["out", "in"]


@dataclass(frozen=True, slots=True)
class SliceConfig:
    """Tuning of :class:`LineSlice`; times in seconds, sizes in working pixels."""

    enabled: bool = True
    # Rows matched either side of the line, and the largest shift looked for.
    half: int = 4
    reach: int = 8
    lane: int = 10
    lag: float = 0.08
    # A lane's match counts only when the best shift beats the average one by
    # this many lane widths of mismatch (an edge moving inside the strip) ...
    edge: float = 1.0
    # ... and its mismatch is at most this share of the average.
    sharp: float = 0.375
    hold: float = 0.3
    # Speeds below this (pixels per frame) are jitter.
    dead: float = 0.1
    share: float = 1.0
    wait: float = 2.0
    end: float = 1.0
    # Clean reports needed before their median replaces the blob area, the
    # window around a report its area is summed over, and how far (a factor)
    # the learned unit may be from one person's blob area at the line.
    samples: int = 3
    window: float = 1.0
    agree: float = 2.0
    # Learn from every report of the tracker (its area shared by the people reported
    # together), not only from people alone; and take the larger of the learned unit
    # and the blob area (a unit too small counts noise, one too large counts less).
    learn_all: bool = True
    # Before anyone walked alone, the pieces' area (sensors.analyzer) stands in for a person's.
    pieces: bool = True
    # Seconds after the background was learned again in which nothing is counted
    # (the mask grows back in place: its edges move without anyone moving).
    calm: float = 0.5
    unit_max: bool = True
    # Weight of the gray strip's match (inside the foreground) beside the mask's, per
    # ``gray_step`` gray levels; 0: the mask alone.
    gray: float = 1.0
    # Lanes are netted over blocks this long (seconds; 0: the whole episode).
    block: float = 0.0
    # A lane with no speed of its own takes that of the lanes beside it on the line that
    # have one (the same body, moving as a whole: the middle of a column has no edge).
    spread: bool = False
    gray_step: float = 16.0
    # People go through a door one after the other, not faster than about one a
    # second: a crossing dated within ``gap`` seconds of another one that way (one
    # the tracker reported, or one the counter added) is not added. A crush shuffling
    # on a bus step moves a person's area over the line every 0.3-0.8 s without
    # anyone going through (bench/NOTES.md, slice2, session 11); 0: no cap.
    gap: float = 1.0
    # Lanes are matched on every ``every``-th frame only (their speeds held between):
    # the counter costs 5-11 % of the rest of the analyzer's time instead of 10-16 %
    # (kiwan, umbrella_crossing, citybus; tuning 88/28/45 -> 86/28/47; bench/NOTES.md,
    # slice2, session 11).
    every: int = 2


@dataclass(frozen=True, slots=True)
class Crossing:
    """A crossing the counter adds, dated at ``frame``; ``lanes``: (first, last) where
    most of the area went over."""

    frame: int
    direction: Direction
    lanes: tuple[int, int]


@dataclass
class _Episode:
    start: int
    net: npt.NDArray[np.float64]
    last_busy: int
    block_start: int = 0
    # Area moved each way in the blocks done.
    moved: dict[str, float] = field(default_factory=lambda: {"out": 0.0, "in": 0.0})
    # The area moved each way as last seen, and in people (each frame's increment
    # over that frame's unit: a unit learned later does not recount what went before).
    seen: dict[str, float] = field(default_factory=lambda: {"out": 0.0, "in": 0.0})
    people: dict[str, float] = field(default_factory=lambda: {"out": 0.0, "in": 0.0})
    counted: dict[str, int] = field(default_factory=lambda: {"out": 0, "in": 0})
    added: dict[str, int] = field(default_factory=lambda: {"out": 0, "in": 0})
    # Crossings dated, waiting ``wait`` to see whether the tracker reported them.
    waiting: list[tuple[int, int, Direction, tuple[int, int]]] = field(default_factory=list)
    # Frames of the crossings added each way.
    kept: dict[str, list[int]] = field(default_factory=lambda: {"out": [], "in": []})


@_compiled
def _sample(mask: npt.NDArray[np.uint8], gray: npt.NDArray[np.uint8],
            index: npt.NDArray[np.int64], inside: npt.NDArray[np.int16], step: float,
            with_gray: bool) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.float32], int]:
    """The strip of the mask (0/1) and of the gray picture (in ``step``s; only when
    ``with_gray`` and the mask strip has foreground), and the strip's foreground count."""
    rows, n = index.shape
    flat = mask.ravel()
    strip = np.zeros((rows, n), np.int16)
    count = 0
    for r in range(rows):
        for x in range(n):
            if inside[r, x] != 0 and flat[index[r, x]] != 0:
                strip[r, x] = 1
                count += 1
    g = np.zeros((rows, n) if with_gray and count > 0 else (1, 1), np.float32)
    if with_gray and count > 0:
        gflat = gray.ravel()
        for r in range(rows):
            for x in range(n):
                g[r, x] = gflat[index[r, x]] / step
    return strip, g, count


@_compiled
def _lane_costs(cur: npt.NDArray[np.int16], prev: npt.NDArray[np.int16],
                g_cur: npt.NDArray[np.float32], g_prev: npt.NDArray[np.float32],
                half: int, reach: int, lane: int, gray: float) -> npt.NDArray[np.float64]:
    """Mismatch per (shift, lane) of the strip's middle ``2 half + 1`` rows now against
    the strip before moved ``shift`` rows outward (row ``reach`` + r - shift), shift
    from -reach to reach: the mask's disagreement, plus ``gray`` x the gray strip's
    (capped at 4 steps) where the mask is foreground now (``gray`` 0: mask only).
    Lanes with no foreground in either strip are left at 0 (no match)."""
    rows = cur.shape[0]
    lanes = cur.shape[1] // lane
    cost = np.zeros((2 * reach + 1, lanes))
    for k in range(lanes):
        x0 = k * lane
        seen = 0
        for r in range(rows):
            for x in range(x0, x0 + lane):
                seen += cur[r, x] + prev[r, x]
        if seen == 0:
            continue
        for i in range(2 * reach + 1):
            shift = i - reach
            total = 0.0
            for r in range(2 * half + 1):
                rc = reach + r
                rp = rc - shift
                for x in range(x0, x0 + lane):
                    d = float(abs(cur[rc, x] - prev[rp, x]))
                    if gray > 0.0 and cur[rc, x] != 0:
                        d += gray * min(abs(g_cur[rc, x] - g_prev[rp, x]), 4.0)
                    total += d
            cost[i, k] = total
    return cost


@_compiled
def _lane_speeds(cost: npt.NDArray[np.float64], lane: int, edge: float, sharp: float,
                 dead: float, gap: int, speed: npt.NDArray[np.float64],
                 speed_frame: npt.NDArray[np.int64], frame: int) -> None:
    """Each lane's best shift (sub-pixel, by a parabola through its neighbours) as a
    speed in rows per frame, kept in ``speed`` / ``speed_frame`` where the match is
    clear: the best beats the average by ``edge`` lane widths and is at most
    ``sharp`` of it."""
    shifts, lanes = cost.shape
    reach = (shifts - 1) // 2
    for k in range(lanes):
        best = 0
        total = 0.0
        for i in range(shifts):
            total += cost[i, k]
            if cost[i, k] < cost[best, k]:
                best = i
        low = cost[best, k]
        mean = total / shifts
        if mean - low < edge * lane or low > sharp * mean:
            continue
        sub = 0.0
        if 0 < best < shifts - 1:
            c0, c2 = cost[best - 1, k], cost[best + 1, k]
            curve = c0 - 2.0 * low + c2
            if curve > 0.0:
                sub = (c0 - c2) / curve / 2.0
        v = (best - reach + sub) / gap
        speed[k] = 0.0 if abs(v) < dead else v
        speed_frame[k] = frame


@_compiled
def _lane_flux(cur: npt.NDArray[np.int16], speed: npt.NDArray[np.float64],
               speed_frame: npt.NDArray[np.int64], frame: int, hold: float, half: int,
               reach: int, lane: int
               ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per lane: foreground on the line (pixels, mean of its three middle rows) times
    the lane's speed if it is at most ``hold`` frames old; that foreground; whether
    the speed was fresh."""
    lanes = cur.shape[1] // lane
    flux = np.zeros(lanes)
    occupied = np.zeros(lanes)
    fresh = np.zeros(lanes, np.bool_)
    mid = reach + half
    for k in range(lanes):
        on = 0
        for r in range(mid - 1, mid + 2):
            for x in range(k * lane, (k + 1) * lane):
                on += cur[r, x]
        occupied[k] = on / 3.0
        if on > 0 and frame - speed_frame[k] <= hold:
            fresh[k] = True
            flux[k] = occupied[k] * speed[k]
    return flux, occupied, fresh


@_compiled
def _net_add(net: npt.NDArray[np.float64], flux: npt.NDArray[np.float64]
             ) -> tuple[bool, float, float]:
    """Add a frame's ``flux`` into ``net`` (per lane); whether anything moved, and the
    net's sums over the lanes ahead (out) and back (in)."""
    moved = False
    ahead = 0.0
    back = 0.0
    for k in range(net.shape[0]):
        if flux[k] != 0.0:
            moved = True
            net[k] += flux[k]
        if net[k] > 0.0:
            ahead += net[k]
        else:
            back -= net[k]
    return moved, ahead, back


class LineSlice:
    """Feed the foreground mask every frame (:meth:`feed`), the tracker's passages
    (:meth:`reported`); :meth:`feed` returns the crossings to add."""

    def __init__(self, line: PixelLine, size: tuple[int, int], fps: float,
                 config: SliceConfig | None = None) -> None:
        """A counter for ``line`` (working pixels) in pictures of ``size`` (w, h)."""
        cfg = self.config = config or SliceConfig()
        self.fps = fps
        self.line = line
        w, h = size
        n = max(cfg.lane, round(line.length))
        self.lanes = max(1, n // cfg.lane)
        n = self.lanes * cfg.lane
        self.length = n
        rows = 2 * (cfg.half + cfg.reach) + 1
        ax, ay = line.a
        bx, by = line.b
        nx, ny = line.normal
        along = (np.arange(n) + 0.5) / n
        offset = np.arange(rows) - (cfg.half + cfg.reach)
        xs = ax + along[None, :] * (bx - ax) + offset[:, None] * nx
        ys = ay + along[None, :] * (by - ay) + offset[:, None] * ny
        xi = np.rint(xs).astype(np.int64)
        yi = np.rint(ys).astype(np.int64)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        self._index = np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)
        self._inside = inside.astype(np.int16)
        self._gap = max(1, round(cfg.lag * fps))
        self._strips: deque[npt.NDArray[np.int16] | None] = deque(maxlen=self._gap + 1)
        self._grays: deque[npt.NDArray[np.float32] | None] = deque(maxlen=self._gap + 1)
        self._no_gray = np.zeros((1, 1), np.float32)
        self._speed = np.zeros(self.lanes)
        self._speed_frame = np.full(self.lanes, -(10**9), np.int64)
        self._episode: _Episode | None = None
        keep = round((2 * cfg.window + cfg.wait) * fps) + 2
        # Area moved over the line per lane on each recent frame (+ out, - in).
        self._flux: deque[tuple[int, npt.NDArray[np.float64]]] = deque(maxlen=keep)
        # The history above is complete from this frame on (older entries dropped).
        self._complete = -(10**9)
        self._reports: list[tuple[int, Direction]] = []
        self._samples: deque[float] = deque(maxlen=15)
        self._median: float | None = None
        self._calibrating: list[tuple[int, Direction, tuple[int, int], int]] = []
        self.frames_busy = 0
        self._relearned = -(10**9)

    # ---- what the analyzer tells it
    def reported(self, frame: int, direction: Direction) -> None:
        """The tracker reported a passage dated ``frame``."""
        self._reports.append((frame, direction))

    def reported_near(self, frame: int, direction: Direction, span: float) -> bool:
        """Whether the tracker reported a passage that way within ``span`` frames of ``frame``."""
        return any(d == direction and abs(f - frame) <= span for f, d in self._reports)

    def clean_report(self, frame: int, direction: Direction, along: tuple[float, float],
                     people: int = 1) -> None:
        """A passage of one person alone at the line, dated ``frame``, whose box spans
        ``along`` (0..1 along the line): its area teaches one person's unit."""
        lo = max(0, int(along[0] * self.lanes) - 1)
        hi = min(self.lanes - 1, int(along[1] * self.lanes) + 1)
        self._calibrating.append((frame, direction, (lo, hi), people))

    def unit(self, blob_area: float | None) -> float | None:
        """One person's area over the line: learned, else ``blob_area``."""
        cfg = self.config
        if len(self._samples) >= cfg.samples:
            if self._median is None:
                self._median = float(np.median(np.asarray(self._samples)))
            learned = self._median
            if cfg.unit_max:
                return learned if blob_area is None else max(learned, blob_area)
            if blob_area is None or blob_area / cfg.agree <= learned <= blob_area * cfg.agree:
                return learned
            # The mask's motion over the line does not measure people in this view.
            return None
        return blob_area

    # ---- every frame
    def feed(self, frame: int, mask: npt.NDArray[np.uint8], relearned: bool,
             blob_area: float | Callable[[], float | None] | None,
             gray: npt.NDArray[np.uint8] | None = None) -> list[Crossing]:
        """One frame's foreground mask (0/255, working pixels); returns crossings to add.
        ``blob_area``: one person's blob area at the line, or a function giving it (asked
        only on frames where area moved)."""
        cfg = self.config
        with_gray = cfg.gray > 0 and gray is not None
        if relearned:
            # The picture was learned again: nothing to match across.
            self._relearned = frame
            self._strips.clear()
            self._grays.clear()
            strip = None
            if with_gray:
                self._grays.append(None)
        else:
            # The gray strip only of frames matched now or ``lag`` later.
            matched = frame % cfg.every == 0 or (frame + self._gap) % cfg.every == 0
            strip, g, count = _sample(mask, mask if gray is None else gray, self._index,
                                      self._inside, cfg.gray_step, with_gray and matched)
            if count == 0:
                strip = None
            if with_gray:
                self._grays.append(None if strip is None or not matched else g)
        self._strips.append(strip)
        flux = self._flux_of(frame)
        if flux is not None:
            if len(self._flux) == self._flux.maxlen:
                self._complete = self._flux[0][0] + 1
            self._flux.append((frame, flux))
        if self._calibrating:
            self._learn(frame)
        return self._count(frame, flux, blob_area)

    def _flux_of(self, frame: int) -> npt.NDArray[np.float64] | None:
        """The area moved over the line per lane on this frame (+ out, - in); ``None``
        when no foreground lies on the strip."""
        cfg = self.config
        cur = self._strips[-1]
        if cur is None:
            self._speed_frame[:] = -(10**9)
            return None
        self.frames_busy += 1
        half, reach, lane = cfg.half, cfg.reach, cfg.lane
        prev = self._strips[0] if len(self._strips) > self._gap else None
        if prev is not None and frame % cfg.every == 0:
            g_cur = self._grays[-1] if len(self._grays) > self._gap else None
            g_prev = self._grays[0] if len(self._grays) > self._gap else None
            if g_cur is None or g_prev is None:
                g_cur = g_prev = self._no_gray
            cost = _lane_costs(cur, prev, g_cur, g_prev, half, reach, lane,
                               cfg.gray if g_cur is not self._no_gray else 0.0)
            _lane_speeds(cost, lane, cfg.edge, cfg.sharp, cfg.dead, self._gap, self._speed,
                         self._speed_frame, frame)
        flux, occupied, fresh = _lane_flux(cur, self._speed, self._speed_frame, frame,
                                           cfg.hold * self.fps, half, reach, lane)
        if cfg.spread and fresh.any() and not fresh.all():
            speed = self._spread(occupied, fresh)
            flux = occupied * speed
        if frame - self._relearned <= cfg.calm * self.fps:
            flux[:] = 0.0
        return flux

    def _spread(self, occupied: npt.NDArray[np.float64], fresh: npt.NDArray[np.bool_]
                ) -> npt.NDArray[np.float64]:
        """Speeds with each run of occupied lanes' lanes without a speed given the
        run's (occupancy-weighted) mean speed of those with one (0 if none has)."""
        speed = np.where(fresh, self._speed, 0.0)
        on = occupied > 0
        edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            known = fresh[start:stop]
            if known.any() and not known.all():
                w = occupied[start:stop] * known
                mean = float((w * self._speed[start:stop]).sum() / w.sum())
                speed[start:stop] = np.where(known, speed[start:stop], mean)
        return speed

    def _learn(self, frame: int) -> None:
        """Clean reports whose window has passed: their area over the line is a sample."""
        cfg = self.config
        span = cfg.window * self.fps
        due = [c for c in self._calibrating if frame - c[0] >= span]
        if not due:
            return
        self._calibrating = [c for c in self._calibrating if frame - c[0] < span]
        for at, direction, (lo, hi), people in due:
            if self._complete > at - span + 1:
                continue
            moved = np.zeros(self.lanes)
            for f, flux in self._flux:
                if abs(f - at) <= span:
                    moved += flux
            sign = 1.0 if direction == "out" else -1.0
            area = float(np.maximum(sign * moved[lo:hi + 1], 0.0).sum())
            if area > 0.0:
                self._samples.append(area / max(1, people))
                self._median = None

    def _count(self, frame: int, flux: npt.NDArray[np.float64] | None,
               blob_area: float | Callable[[], float | None] | None) -> list[Crossing]:
        cfg = self.config
        busy = self._strips[-1] is not None
        ep = self._episode
        if ep is None and busy:
            ep = self._episode = _Episode(start=frame, net=np.zeros(self.lanes), last_busy=frame,
                                          block_start=frame)
        if ep is None:
            if self._reports and frame - self._reports[0][0] > 10 * self.fps:
                self._reports = [r for r in self._reports if frame - r[0] <= 10 * self.fps]
            return []
        # A frame where nothing moved changes no total (unless a block ends).
        changed, ahead, back = _net_add(ep.net, flux) if flux is not None else (False, 0.0, 0.0)
        if busy:
            ep.last_busy = frame
        if cfg.block > 0 and frame - ep.block_start >= cfg.block * self.fps:
            ep.moved["out"] += float(np.maximum(ep.net, 0.0).sum())
            ep.moved["in"] += float(np.maximum(-ep.net, 0.0).sum())
            ep.net[:] = 0.0
            ep.block_start = frame
            changed, ahead, back = True, 0.0, 0.0
        unit = None
        if changed:
            unit = self.unit(blob_area() if callable(blob_area) else blob_area)
        for direction, sign, part in (("out", 1.0, ahead), ("in", -1.0, back)) if changed else ():
            total = ep.moved[direction] + part
            if unit is not None and unit > 0:
                # (While no unit is known, what moves is not counted later either.)
                ep.people[direction] += (total - ep.seen[direction]) / unit
            ep.seen[direction] = total
            if unit is not None and unit > 0:
                while ep.people[direction] >= ep.counted[direction] + cfg.share:
                    ep.counted[direction] += 1
                    moved = np.maximum(sign * ep.net, 0.0)
                    where = np.flatnonzero(moved >= 0.25 * moved.max()) if moved.any() else [0, 0]
                    ep.waiting.append((frame, ep.counted[direction], direction,  # type: ignore[arg-type]
                                       (int(where[0]), int(where[-1]))))
        found: list[Crossing] = []
        waiting = []
        for at, number, direction, lanes in ep.waiting:
            if frame - at < cfg.wait * self.fps:
                waiting.append((at, number, direction, lanes))
                continue
            tracker = sum(1 for f, d in self._reports
                          if d == direction and f >= ep.start - self.fps)
            if tracker + ep.added[direction] < number:
                span = cfg.gap * self.fps
                if cfg.gap > 0 and (
                        any(d == direction and abs(f - at) <= span for f, d in self._reports)
                        or any(abs(at - f) <= span for f in ep.kept[direction])):
                    # Too soon after someone else that way: the same person's area
                    # moving again (a crush shuffling), not one more person.
                    continue
                ep.kept[direction].append(at)
                ep.added[direction] += 1
                found.append(Crossing(frame=at, direction=direction, lanes=lanes))
        ep.waiting = waiting
        if not busy and frame - ep.last_busy >= cfg.end * self.fps and not ep.waiting:
            self._episode = None
        return found

    def lane_span(self, lanes: tuple[int, int]) -> tuple[float, float]:
        """Along-line fractions (0..1) covered by lanes ``lanes`` (first, last)."""
        return lanes[0] / self.lanes, (lanes[1] + 1) / self.lanes

    @staticmethod
    def distance(line: PixelLine, x: float, y: float) -> float:
        """Pixels from the line (helper for callers)."""
        return math.fabs(line.signed_distance(x, y))

"""A synthetic camera: a corridor seen by a camera facing a household door.

It is a full backend (same contract as the real ones), deterministic from a
seed, and scripted: a :class:`Scenario` is a list of timed actions (door
opens, a person walks out / in / stands in the doorway and goes back, the
light steps, the lens is covered, the picture freezes, the camera is bumped).
Tests assert exact outcomes against :meth:`SyntheticSource.expected_passages`;
the agent's simulation mode runs it live (``realtime=True`` paces frames at
``fps``) and may :meth:`~SyntheticSource.schedule` more actions while it runs,
replaying :meth:`SyntheticSource.door_events` into its mock reed switch.

Geometry (normalized): the back wall holds the door (x 0.40-0.60, y 0.12-0.55);
the corridor floor runs left-right in front of it. The threshold is the door's
bottom edge, y = 0.55; people inside are seen through the doorway only.
Person height follows a simple perspective, ``h = (y_feet - 0.2) * H``; a
house cat is a low, long blob a quarter of that height.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal, Self

import cv2
import numpy as np

from firmware_config.scene import Scene
from ground.errors import HardwareError
from sensors.frames import Frame, GrayImage

__all__ = [
    "SCENARIOS",
    "SILL_Y",
    "Cover",
    "DoorOpen",
    "ExpectedPassage",
    "Freeze",
    "LightStep",
    "Scenario",
    "Shift",
    "SyntheticSource",
    "Walk",
    "person",
]

DOOR_X0, DOOR_X1, DOOR_Y0, SILL_Y = 0.40, 0.60, 0.12, 0.55
_HORIZON = 0.20
_INSIDE_Y = 0.42
_CORRIDOR_Y = 0.78
_ROOM_Y = 0.36
WalkKind = Literal["exit", "entry", "handover", "call", "pass", "cat", "room", "turn"]
# Height of a house cat (back and raised head) over a person's at the same place.
CAT_HEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class Walk:
    """A person: ``exit`` (out of the door, then along the corridor), ``entry``
    (the reverse), ``handover`` (steps up to the sill, waits, goes back in),
    ``call`` (a visitor who comes up to the sill from the corridor, waits
    and goes back the way they came), ``pass`` (walks across the picture
    along the corridor, never through the door), ``room`` (walks sideways
    across the room behind the doorway, seen through the open door, feet
    well inside: ``row``, default 0.36) or ``turn`` (walks towards the door
    and turns back before the sill, without stopping); or ``cat``: a house
    cat that runs out over the sill into the corridor and straight back in
    (give it a short ``duration``, 2-3 s). Only ``exit`` and ``entry`` are
    passages.

    ``lane`` shifts the path sideways (normalized); ``side`` is the corridor
    direction (-1 left, +1 right); ``shade`` is the clothing gray level;
    ``row`` is where the feet of a ``pass`` are, normalized (default: along
    the corridor).
    """

    kind: WalkKind
    start: float
    duration: float = 4.0
    lane: float = 0.0
    side: int = 1
    shade: int = 50
    row: float = 0.0


@dataclass(frozen=True, slots=True)
class DoorOpen:
    """The door swings open at ``start`` and closes after ``duration`` seconds."""

    start: float
    duration: float


@dataclass(frozen=True, slots=True)
class LightStep:
    """Global brightness multiplied by ``gain`` from ``start`` on (a light switching)."""

    start: float
    gain: float


@dataclass(frozen=True, slots=True)
class Cover:
    """The lens is covered (``level`` ~0) or blinded (``level`` ~255) in [start, end)."""

    start: float
    end: float
    level: int = 4


@dataclass(frozen=True, slots=True)
class Freeze:
    """The picture stops changing in [start, end) (a hung pipeline)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Shift:
    """The camera is bumped at ``start``: the scene moves by (dx, dy) normalized."""

    start: float
    dx: float
    dy: float


Action = Walk | DoorOpen | LightStep | Cover | Freeze | Shift


@dataclass(frozen=True, slots=True)
class ExpectedPassage:
    """A crossing the script produces: the frame the feet pass the sill."""

    frame: int
    t: float
    direction: Literal["out", "in"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A timed script; ``duration`` None means endless (live use)."""

    actions: tuple[Action, ...] = ()
    duration: float | None = 10.0


def person(kind: WalkKind, at: float, **walk: float | int) -> tuple[Action, ...]:
    """A walk together with the door opening around it, the way it happens."""
    w = Walk(kind, at, **walk)  # type: ignore[arg-type]
    return (DoorOpen(at - 0.8, w.duration + 1.6), w)


def _path(w: Walk) -> list[tuple[float, float, float]]:
    """Waypoints (fraction of duration, x, y_feet), normalized."""
    cx = 0.5 + w.lane
    hidden = cx + 0.16 * (1 if w.side > 0 else -1)
    off = 1.2 if w.side > 0 else -0.2
    out_path = [
        (0.0, hidden, _INSIDE_Y - 0.02),
        (0.2, cx, _INSIDE_Y),
        (0.45, cx, SILL_Y),
        (0.6, cx, 0.70),
        (0.7, cx + 0.05 * w.side, _CORRIDOR_Y),
        (1.0, off, _CORRIDOR_Y),
    ]
    if w.kind == "pass":
        row = w.row or _CORRIDOR_Y
        ends = (-0.2, 1.2) if w.side > 0 else (1.2, -0.2)
        return [(0.0, ends[0], row), (1.0, ends[1], row)]
    if w.kind == "room":
        # Across the room beyond the doorway, only the part in the opening is seen.
        row = w.row or _ROOM_Y
        ends = (DOOR_X0 - 0.15, DOOR_X1 + 0.15)
        if w.side < 0:
            ends = ends[::-1]
        return [(0.0, ends[0] + w.lane, row), (1.0, ends[1] + w.lane, row)]
    if w.kind == "cat":
        return [
            (0.0, hidden, _INSIDE_Y - 0.02),
            (0.25, cx, _INSIDE_Y),
            (0.4, cx, SILL_Y),
            (0.5, cx + 0.04 * w.side, 0.68),
            (0.6, cx, SILL_Y),
            (0.75, cx, _INSIDE_Y),
            (1.0, hidden, _INSIDE_Y - 0.02),
        ]
    if w.kind == "turn":
        return [
            (0.0, hidden, _INSIDE_Y - 0.02),
            (0.3, cx, _INSIDE_Y),
            (0.5, cx, SILL_Y - 0.06),
            (0.7, cx, _INSIDE_Y),
            (1.0, hidden, _INSIDE_Y - 0.02),
        ]
    if w.kind == "exit":
        return out_path
    if w.kind == "entry":
        return [(1.0 - f, x, y) for f, x, y in reversed(out_path)]
    if w.kind == "call":
        near = cx + 0.05 * w.side
        return [
            (0.0, off, _CORRIDOR_Y),
            (0.3, near, _CORRIDOR_Y),
            (0.4, cx, SILL_Y + 0.03),
            (0.6, cx, SILL_Y + 0.03),
            (0.7, near, _CORRIDOR_Y),
            (1.0, off, _CORRIDOR_Y),
        ]
    return [
        (0.0, hidden, _INSIDE_Y - 0.02),
        (0.2, cx, _INSIDE_Y),
        (0.4, cx, SILL_Y - 0.03),
        (0.6, cx, SILL_Y - 0.03),
        (0.8, cx, _INSIDE_Y),
        (1.0, hidden, _INSIDE_Y - 0.02),
    ]


def _position(w: Walk, t: float) -> tuple[float, float] | None:
    u = (t - w.start) / w.duration
    if not 0.0 <= u <= 1.0:
        return None
    path = _path(w)
    for (f0, x0, y0), (f1, x1, y1) in itertools.pairwise(path):
        if u <= f1:
            k = (u - f0) / (f1 - f0)
            return x0 + k * (x1 - x0), y0 + k * (y1 - y0)
    return path[-1][1], path[-1][2]


def _door_open_fraction(actions: Iterable[Action], t: float) -> float:
    ramp = 0.6
    best = 0.0
    for a in actions:
        if isinstance(a, DoorOpen):
            opening = (t - a.start) / ramp
            closing = (a.start + a.duration - t) / ramp
            best = max(best, float(np.clip(min(opening, closing), 0.0, 1.0)))
    return best


def _static_background(width: int, height: int, seed: int) -> GrayImage:
    rng = np.random.default_rng([seed, 7])
    img = np.empty((height, width), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None] / height
    sill = int(SILL_Y * height)
    img[:] = 150.0
    # Floor: brighter towards the camera, with a tile texture so tracking is not trivial.
    floor = 110.0 + 50.0 * (ys - SILL_Y) / (1.0 - SILL_Y)
    img[sill:] = np.broadcast_to(floor[sill:], img[sill:].shape)
    texture = cv2.GaussianBlur(rng.normal(0, 6, (height, width)).astype(np.float32), (0, 0), 1.5)
    img += texture
    x0, x1, y0 = int(DOOR_X0 * width), int(DOOR_X1 * width), int(DOOR_Y0 * height)
    # The door frame, and the interior seen through it when the door opens.
    cv2.rectangle(img, (x0 - 3, y0 - 3), (x1 + 2, sill), 90.0, -1)
    img[y0:sill, x0:x1] = 175.0 + texture[y0:sill, x0:x1]
    return np.clip(img, 0, 255).astype(np.uint8)


class SyntheticSource:
    """Renders a scripted corridor; see the module docstring and :class:`FrameSource`."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        size: tuple[int, int] = (320, 240),
        fps: float = 25.0,
        realtime: bool = False,
        noise: float = 2.0,
    ) -> None:
        """Prepare the static scene; nothing is rendered until ``read``."""
        if fps <= 0 or size[0] < 64 or size[1] < 48:
            raise HardwareError(
                "synthetic camera needs fps > 0 and at least 64x48", device="synthetic"
            )
        self._actions: list[Action] = list(scenario.actions)
        self._duration = scenario.duration
        self._seed = seed
        self._size = size
        self._fps = fps
        self._realtime = realtime
        self._noise = noise
        self._base = _static_background(size[0], size[1], seed)
        self._index = 0
        self._last: GrayImage | None = None
        self._lock = threading.Lock()
        self._t0_wall: float | None = None
        self._t0_epoch = 0.0
        self._closed = False

    @property
    def fps(self) -> float:
        """Frames per second of the script clock."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return self._size

    @property
    def scene(self) -> Scene:
        """The scene matching the rendered door (threshold along its sill)."""
        return Scene(
            threshold=((DOOR_X0 - 0.02, SILL_Y), (DOOR_X1 + 0.02, SILL_Y)),
            inside_point=(0.5, 0.35),
            description="synthetic corridor door",
        )

    def schedule(self, action: Action, *, delay: float = 0.0) -> float:
        """Add an action starting ``delay`` seconds after the current frame
        (thread-safe); returns its start on the script clock."""
        start = self._index / self._fps + delay
        with self._lock:
            self._actions.append(_delayed(action, start))
        return start

    def wall_time(self, t: float) -> float | None:
        """When a realtime source shows script time ``t``, on the wall clock
        (``time.time()``); ``None`` before the first frame or when not realtime.

        Frames are paced from the first one read, so this is when the frame
        is due. A source that fell behind (its reader starved of CPU) renders
        late and then catches up, so *now* on the script clock may be behind
        the wall clock's now: an action scheduled then happens at this time,
        not ``delay`` seconds after the wall clock's now."""
        if self._t0_wall is None:
            return None
        return self._t0_epoch + t

    def expected_passages(self) -> list[ExpectedPassage]:
        """Every crossing of the sill the script contains, in time order."""
        found: list[ExpectedPassage] = []
        for a in self._snapshot_actions():
            if isinstance(a, Walk) and a.kind in ("exit", "entry"):
                t = a.start + 0.45 * a.duration
                direction: Literal["out", "in"] = "out" if a.kind == "exit" else "in"
                if a.kind == "entry":
                    t = a.start + 0.55 * a.duration
                found.append(ExpectedPassage(round(t * self._fps), t, direction))
        return sorted(found, key=lambda p: p.t)

    def door_events(self) -> list[tuple[float, bool]]:
        """``(t, is_open)`` changes of the door for a mock reed switch, in time order."""
        events: list[tuple[float, bool]] = []
        for a in self._snapshot_actions():
            if isinstance(a, DoorOpen):
                events += [(a.start, True), (a.start + a.duration, False)]
        return sorted(events)

    def read(self) -> Frame | None:
        """Render the next frame (sleeping to keep ``fps`` when realtime)."""
        if self._closed:
            return None
        t = self._index / self._fps
        if self._duration is not None and t >= self._duration:
            return None
        if self._realtime:
            self._pace(t)
        gray = self._render(t)
        frame = Frame(index=self._index, t=t, gray=gray)
        self._last = gray
        self._index += 1
        return frame

    def snapshot_jpeg(self) -> bytes:
        """JPEG of the last rendered frame."""
        if self._last is None:
            raise HardwareError("no frame has been read yet", device="synthetic")
        ok, data = cv2.imencode(".jpg", self._last)
        if not ok:
            raise HardwareError("JPEG encoding failed", device="synthetic")
        return bytes(data.tobytes())

    def close(self) -> None:
        """Stop producing frames."""
        self._closed = True

    def __enter__(self) -> Self:
        """Return the source."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop producing frames."""
        self.close()

    def _snapshot_actions(self) -> list[Action]:
        with self._lock:
            return list(self._actions)

    def _pace(self, t: float) -> None:
        now = time.monotonic()
        if self._t0_wall is None:
            self._t0_wall = now - t
            self._t0_epoch = time.time() - t
        wait = self._t0_wall + t - now
        if wait > 0:
            time.sleep(wait)

    def _render(self, t: float) -> GrayImage:
        actions = self._snapshot_actions()
        for a in actions:
            if isinstance(a, Freeze) and a.start <= t < a.end and self._last is not None:
                return self._last
        width, height = self._size
        img = self._base.astype(np.float32)
        walkers = [(w, p) for w in actions if isinstance(w, Walk) if (p := _position(w, t))]
        behind = [(w, p) for w, p in walkers if p[1] < SILL_Y]
        front = [(w, p) for w, p in walkers if p[1] >= SILL_Y]
        if behind:
            layer = img.copy()
            for w, (x, y) in behind:
                _draw_walker(layer, w, x, y)
            x0, x1 = int(DOOR_X0 * width), int(DOOR_X1 * width)
            y0, y1 = int(DOOR_Y0 * height), int(SILL_Y * height)
            img[y0:y1, x0:x1] = layer[y0:y1, x0:x1]
        _draw_door(img, _door_open_fraction(actions, t))
        for w, (x, y) in sorted(front, key=lambda wp: wp[1][1]):
            _draw_walker(img, w, x, y, shadow=True)
        img = self._camera_effects(img, actions, t)
        rng = np.random.default_rng([self._seed, self._index])
        img += rng.normal(0.0, self._noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _camera_effects(self, img: np.ndarray, actions: Sequence[Action], t: float) -> np.ndarray:
        width, height = self._size
        for a in actions:
            if isinstance(a, Shift) and t >= a.start:
                m = np.array([[1, 0, a.dx * width], [0, 1, a.dy * height]], np.float32)
                img = cv2.warpAffine(img, m, (width, height), borderMode=cv2.BORDER_REFLECT)
            elif isinstance(a, LightStep) and t >= a.start:
                img *= a.gain
        for a in actions:
            if isinstance(a, Cover) and a.start <= t < a.end:
                img[:] = float(a.level)
        return img


def _delayed(action: Action, start: float) -> Action:
    if isinstance(action, Cover):
        return replace(action, start=start, end=start + (action.end - action.start))
    if isinstance(action, Freeze):
        return replace(action, start=start, end=start + (action.end - action.start))
    return replace(action, start=start)


def _draw_walker(img: np.ndarray, w: Walk, x: float, y: float, *, shadow: bool = False) -> None:
    if w.kind == "cat":
        _draw_cat(img, x, y, w.shade, w.side)
    else:
        _draw_person(img, x, y, w.shade, shadow=shadow)


def _draw_cat(img: np.ndarray, x: float, y: float, shade: int, side: int) -> None:
    """A cat seen from the side: a low, long body and a raised head, a quarter
    of a person's height there (it casts no shadow worth drawing)."""
    height, width = img.shape
    h = CAT_HEIGHT * max(4.0, (y - _HORIZON) * height)
    px, py = x * width, y * height
    cv2.ellipse(img, (int(px), int(py - 0.4 * h)), (max(3, int(0.6 * h)), max(2, int(0.4 * h))),
                0, 0, 360, float(shade), -1)
    cv2.circle(img, (int(px + 0.6 * h * (1 if side > 0 else -1)), int(py - 0.75 * h)),
               max(2, int(0.25 * h)), float(shade), -1)


def _draw_person(img: np.ndarray, x: float, y: float, shade: int, *, shadow: bool = False) -> None:
    height, width = img.shape
    h = max(4.0, (y - _HORIZON) * height)
    px, py = x * width, y * height
    if shadow:
        # A soft cast shadow on the floor: darker, textured floor still visible.
        mask = np.zeros_like(img)
        cv2.ellipse(mask, (int(px + 0.12 * h), int(py)), (int(0.25 * h), int(0.05 * h) + 1),
                    0, 0, 360, 1.0, -1)
        img *= 1.0 - 0.3 * mask
    cv2.ellipse(img, (int(px), int(py - 0.45 * h)), (max(2, int(0.15 * h)), int(0.42 * h)),
                0, 0, 360, float(shade), -1)
    cv2.circle(img, (int(px), int(py - 0.9 * h)), max(2, int(0.09 * h)), float(shade + 40), -1)


def _draw_door(img: np.ndarray, open_fraction: float) -> None:
    height, width = img.shape
    x0, x1 = int(DOOR_X0 * width), int(DOOR_X1 * width)
    y0, y1 = int(DOOR_Y0 * height), int(SILL_Y * height)
    # An inward-opening door seen edge-on as it swings: the panel narrows towards the hinge.
    panel = round((x1 - x0) * (1.0 - 0.85 * open_fraction))
    if panel > 0:
        img[y0:y1, x0:x0 + panel] = 120.0


def _scenarios() -> dict[str, Scenario]:
    return {
        "static": Scenario((), 8.0),
        "door_only": Scenario((DoorOpen(1.0, 4.0),), 8.0),
        "exit": Scenario(person("exit", 1.5), 8.0),
        "entry": Scenario(person("entry", 1.5, side=-1), 8.0),
        "handover": Scenario(person("handover", 1.5, duration=5.0), 9.0),
        "pair_exit": Scenario(
            (*person("exit", 1.5, lane=-0.035), Walk("exit", 1.6, lane=0.035, shade=80)), 8.0
        ),
        "exit_then_entry": Scenario(
            person("exit", 1.0) + person("entry", 7.0, side=1, shade=70), 13.0
        ),
        "lighting": Scenario((LightStep(2.0, 1.5), LightStep(5.0, 0.55)), 8.0),
        "exit_with_lighting": Scenario((*person("exit", 1.5), LightStep(2.3, 1.4)), 8.0),
        "covered": Scenario((Cover(2.0, 6.0),), 8.0),
        "blinded": Scenario((Cover(2.0, 6.0, level=252),), 8.0),
        "frozen": Scenario((Freeze(2.0, 6.0),), 8.0),
        "bumped": Scenario((Shift(2.0, 0.12, 0.08),), 8.0),
    }


SCENARIOS: dict[str, Scenario] = _scenarios()
"""Named scripts used by the tests and ``doorwatch demo``."""

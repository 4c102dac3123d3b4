"""The doorway analyzer: frames in, passages (out / in) and track summaries out.

Why background subtraction and not a person detector: opencv-python-headless
5.x ships neither HOG nor Haar cascades in its core wheel, and a DNN person
detector would cost 50-200 ms per frame on a Raspberry Pi 4 core, where we
must keep 30 fps with room to spare. The camera is fixed (or nearly) and looks
at one doorway, so *moving foreground* is a very strong cue there; what
usually breaks such pipelines is lighting, shake, people close together and
people turning back, and each has an explicit mechanism here
(:mod:`sensors.background`, :mod:`sensors.tracking`, and the hysteresis
below). Everything runs at a fixed working width (320 px) so tuning in
pixels means the same thing for any camera resolution.

Reference point of a blob: the **bottom centre** (the feet). The threshold is
drawn on the floor, so the point of a person that lies in the floor plane is
the one whose side of the line means "inside" or "outside" regardless of the
camera's height and tilt; the centre of a tall person seen from the front is
half a body height above the floor and would cross a sill line drawn at
shoulder height early. For a near-overhead camera the bottom of the blob is
close to the body centre's floor position anyway, so one choice covers both.

Crossing: a track's side is decided only when its reference point is more
than a margin (a fraction of the track's height, at least a few pixels) away
from the line, and a passage is reported when the decided side flips. The
passage's frame is the last frame on which the point changed sign, which is
the moment a person watching would call. Jitter on the sill, a person who
steps on it and goes back (a handover), and reflections on a shiny floor
therefore produce no passage. The crossing must happen within the segment
(with a tolerance) so people walking past the doorway are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sensors.background import BackgroundConfig, BackgroundModel
from sensors.frames import Frame, GrayImage
from sensors.scene import PixelLine, Scene
from sensors.tracking import Blob, BlobConfig, Track, Tracker, TrackerConfig, find_blobs

__all__ = ["AnalyzerConfig", "DoorwayAnalyzer", "Passage", "Side", "TrackSummary"]

Side = Literal["inside", "outside", "unknown"]


class Passage(BaseModel):
    """A person crossed the threshold: ``out`` = leaving (from the inside side)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int = Field(description="Frame index at which the person crossed the line.")
    t: float = Field(description="Seconds since the first frame at that frame.")
    direction: Literal["out", "in"] = Field(description="out = leaving, in = entering.")
    track: int = Field(description="Id of the track that crossed.")
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, how clear the crossing was.")


class TrackSummary(BaseModel):
    """What one finished track did; ``handover`` = came from inside, never crossed,
    approached the line and went back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track: int
    first_frame: int
    last_frame: int
    origin: Side = Field(description="First side the track was clearly on.")
    final: Side = Field(description="Last side the track was clearly on.")
    passages: int = Field(description="Passages this track produced.")
    closest: float = Field(description="Closest approach to the line, in track heights.")
    handover: bool


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """One configuration for every camera; see the module docstring for the choices."""

    working_width: int = 320
    anchor_up: float = 0.2
    margin_fraction: float = 0.12
    min_margin_px: float = 3.0
    along_tolerance: float = 0.1
    handover_reach: float = 0.6
    return_margin_factor: float = 2.5
    handover_travel: float = 0.25
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    blobs: BlobConfig = field(default_factory=BlobConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass(slots=True)
class _LineState:
    side: Side = "unknown"
    origin: Side = "unknown"
    last_d: float | None = None
    last_frame: int = 0
    last_t: float = 0.0
    cross_frame: int = 0
    cross_t: float = 0.0
    cross_along: float = 0.5
    depth: float = 0.0
    closest: float = float("inf")
    farthest: float = 0.0
    passages: int = 0


class DoorwayAnalyzer:
    """Feed frames one at a time with :meth:`feed`; call :meth:`finish` at the end.

    ``feed`` returns the passages decided on that frame (possibly dated a few
    frames back, at the moment of crossing); ``summaries`` lists finished
    tracks; ``tracks`` the live ones (for drawing).
    """

    def __init__(self, scene: Scene, fps: float, config: AnalyzerConfig | None = None) -> None:
        """Prepare for a stream at ``fps`` frames per second viewing ``scene``."""
        self.scene = scene
        self.fps = fps
        self.config = config or AnalyzerConfig()
        self._background = BackgroundModel(fps, self.config.background)
        self._tracker = Tracker(fps, self.config.tracker)
        self._line: PixelLine | None = None
        self._scale = 1.0
        self._states: dict[int, _LineState] = {}
        self.summaries: list[TrackSummary] = []
        self.frames = 0
        self.blobs: list[Blob] = []

    @property
    def tracks(self) -> list[Track]:
        """Live confirmed tracks, in working-image pixels (divide by ``scale`` for frame pixels)."""
        return [t for t in self._tracker.tracks if self._tracker.is_confirmed(t)]

    @property
    def scale(self) -> float:
        """Working-image pixels per frame pixel."""
        return self._scale

    def feed(self, frame: Frame) -> list[Passage]:
        """Analyse one frame; return the passages decided on it."""
        gray = self._prepare(frame.gray)
        seg = self._background.apply(gray)
        self.blobs = [] if seg.relearned else find_blobs(seg.mask, self.config.blobs)
        dropped = self._tracker.update(frame.index, self.blobs, allow_new=not seg.relearned)
        passages = [p for t in self._tracker.tracks if (p := self._observe(t, frame))]
        for track in dropped:
            self._close(track)
        self.frames += 1
        return passages

    def finish(self) -> list[Passage]:
        """End of stream: close every live track. Returns no further passages
        (they are decided as they happen) but completes ``summaries``."""
        for track in self._tracker.tracks:
            self._close(track)
        self._tracker.tracks = []
        return []

    def _prepare(self, gray: GrayImage) -> GrayImage:
        h, w = gray.shape[:2]
        if self._line is None:
            self._scale = min(1.0, self.config.working_width / w)
        if self._scale < 1.0:
            size = (round(w * self._scale), round(h * self._scale))
            gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)
        if self._line is None:
            self._line = self.scene.in_pixels(gray.shape[1], gray.shape[0])
        return gray

    def _observe(self, track: Track, frame: Frame) -> Passage | None:
        """Update the track's side of the line from its latest measurement."""
        assert self._line is not None
        state = self._states.setdefault(track.id, _LineState())
        if not track.history or track.history[-1][0] != frame.index:
            return None
        _, cx, cy, _, h = track.history[-1]
        y = cy + h / 2.0 - self.config.anchor_up * h
        d = self._line.signed_distance(cx, y)
        along = self._line.along(cx, y)
        inside_segment = -self.config.along_tolerance <= along <= 1 + self.config.along_tolerance
        if inside_segment:
            state.closest = min(state.closest, abs(d) / max(h, 1.0))
            state.farthest = max(state.farthest, abs(d) / max(h, 1.0))
        if state.last_d is not None and (d > 0) != (state.last_d > 0):
            # Interpolate the zero crossing between the two measurements.
            k = state.last_d / (state.last_d - d)
            state.cross_frame = round(state.last_frame + k * (frame.index - state.last_frame))
            state.cross_t = state.last_t + k * (frame.t - state.last_t)
            state.cross_along = along
        state.last_d, state.last_frame, state.last_t = d, frame.index, frame.t
        margin = max(self.config.min_margin_px, self.config.margin_fraction * h)
        if state.passages and (d > 0) != (state.side == "outside"):
            # Going back over the line right after a passage needs a clear move:
            # someone stepping out and turning along the corridor hovers near it.
            margin *= self.config.return_margin_factor
        if abs(d) <= margin:
            return None
        side: Side = "outside" if d > 0 else "inside"
        if state.origin == "unknown":
            state.origin = side
        previous, state.side = state.side, side
        if previous == "unknown" or previous == side:
            state.depth = max(state.depth, abs(d) / margin)
            return None
        tol = self.config.along_tolerance
        if not (-tol <= state.cross_along <= 1 + tol) or not self._tracker.is_confirmed(track):
            state.depth = abs(d) / margin
            return None
        confidence = min(1.0, 0.5 + 0.1 * min(state.depth, abs(d) / margin) + 0.02 * track.hits)
        state.depth = abs(d) / margin
        state.passages += 1
        return Passage(
            frame=state.cross_frame,
            t=round(state.cross_t, 3),
            direction="out" if side == "outside" else "in",
            track=track.id,
            confidence=round(confidence, 3),
        )

    def _close(self, track: Track) -> None:
        state = self._states.pop(track.id, None)
        if state is None or not self._tracker.is_confirmed(track):
            return
        handover = (
            state.origin == "inside"
            and state.passages == 0
            and state.closest <= self.config.handover_reach
            # It must have come towards the line: a door panel swinging or a
            # light patch in the doorway sits still and is no handover.
            and state.farthest - state.closest >= self.config.handover_travel
        )
        self.summaries.append(
            TrackSummary(
                track=track.id,
                first_frame=track.first_frame,
                last_frame=track.last_frame,
                origin=state.origin,
                final=state.side,
                passages=state.passages,
                closest=round(min(state.closest, 99.0), 3),
                handover=handover,
            )
        )

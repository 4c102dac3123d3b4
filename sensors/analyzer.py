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

Reference point of a blob: the point of the person on the floor, since the
threshold is drawn on the floor. Seen from the front or obliquely (the
product's camera facing a door) that is the bottom of an upright blob, the
feet; seen from steeply above it is the centre of a compact blob. Which
view the camera has is learned from how people walk (the head moves much
less than the feet seen from the front, as much seen from above; see
``_view_sample``), a property of the camera that people abreast or a door
leaf merged with a person do not change; until enough walking was seen the
track's elongation stands in (see ``_anchor``). One configuration serves
both kinds of camera.

Crossing (track level, not per frame): a track's side is decided only when
its reference point is more than a margin (a fraction of one person's
height there) from the line; a change of decided side is a *pending*
crossing, dated halfway through the band (between the last frame the point
was clearly on the old side and the first clearly on the new one: the
labels' convention, and a blob gaining or losing its legs at the line moves
the moment the point passes the line itself by up to a second), and
it is reported once the track has stayed on the new side for
``settle_time`` or ended there (a frame or two back on the old side is a
blob losing its legs and cancels nothing). Jitter
on the sill, someone who steps over and straight back, and a blob wobbling
as people merge and part therefore report nothing. The crossing must lie
within the segment, a little inside its ends (``cross_inset``: the door
leaf at its hinge and someone walking away past the door's end cross
there), so people walking past are ignored,
and the track must have been clearly on the side it came from
(``origin_depth`` margins): someone entering the picture at its edge next
to the line, or walking along the sill, never was; unless a track that
followed someone from deep on that side was lost right there just before
(people crossing or merging at the line swap tracks: ``_vouched``), or
its path spans the band widely, from where it was first seen (not at the
edge) to well beyond the line (``_through``: someone hidden in a bigger
blob with the door leaf until near the line). A new
track that parts from a tracked blob (people who walked together
separating), or starts where a track was lost a moment ago (its box
jumped when blobs merged or parted, and it coasted off on that jump),
inherits that track's history, so it still crossed from where its person
came from; but it reports only once it has moved on its own, and a part
left standing on the line while its group walked on (the door leaf a person
dragged along, a ghost) drops the history (``_walked_itself``); so does a
part that parts from a group beyond the line's band on the other side of
the group's floor point (``_split_across``: seen from the front, the door
leaf or someone standing inside is "higher in the picture" than the feet of
the people outside). A crossing decided on the new side whose track then
falls back into the band (legs lost against a floor of their colour) is
reported after ``band_settle_time`` rather than when the track ends. A
crossing at the same place (within half the wider track's width), moment
and direction as one just reported by another track is a fragment of the
same person and is dropped; so is one
by a piece that broke off a person (smaller than one person) whose family
already reported that direction. A track carried
inside another's blob that never walked on its own (a door leaf) decides
nothing. People meeting at the line from both sides merge into one blob
(:mod:`sensors.opposite`): a track lost into the blob of a track from the
other side is noted; when the blob's floor point then comes into the band
and goes back out deep on the host's side, nearer where the lost track was
along the line than where the host came from, both crossed (a resident
leaving as a visitor comes in); when it goes over to the lost track's side
instead, the host's track is on that person from then on and takes their
line state: a jump onto someone else's feet is no crossing (a visitor
calling at the door while the resident stands in the doorway).

One person's size at each place of the picture is learned from every track
that walked alone (:mod:`sensors.people`). Against it a blob's area and
width say how many people it holds (both must: a bag or a shadow adds area,
not width; with hysteresis and a cap; tracks carried through a merge count
themselves; people already reported nearby are not counted again), so
people abreast in one blob yield one passage each (counted as the crossing
is decided and again as it is reported, on the new side: one of a pair who
merged with the other while still in the band is counted there; a crossing seen before
the size was known is recounted once it is: ``_recount``); a blob much
smaller than a person there is a fragment (someone half out of the
picture) and decides no side; and the side margin scales with one person
there, not with a merged or truncated blob. Until several people taught that
size, a provisional one from whoever walked alone so far weighs crossings by
height only: a blob under half that person's height there (a house cat) is
reported with a confidence the agent does not count; before anyone walked,
nothing tells a cat from a person.

Static foreground absorption (:mod:`sensors.background`) turns an opened
door leaf into background within a second; boxes of tracks that have walked
towards or away from the line are protected from it, unless the track stands
still on a ghost (its outline an edge of the background, not of the picture:
someone on the sill when the picture was first learned; ``_ghost``). A track
standing on a ghost decides no side change (the imprint breaking up, its
shadow parting from its body, moves its box, nobody walks).

Someone already standing at the door when the stream starts is part of the
first picture (issue 14, class 3): when they set off, they and their imprint
are one blob, shaped by both. A track that begins in place, where no track
had been since the picture was first learned, after the stream has run
``ghost_still``, is such a *stander* (``_stander``; its family inherits it).
Two things follow. Its side, decided by the blob's shape before the view was
known (``_anchor``), is not trusted over the view's: a change of side that
only the view's anchor made (its old box, anchored as now, was not clearly on
the old side) is no crossing (``_reanchored``). And once a stander's track
stands still on a ghost with no other track's box touching its own, the
imprint is released into the background at once
(``BackgroundModel.release``), rather than waiting to be absorbed unprotected
while the door leaf or the next resident merges with it. Only tracks of the
first picture: released after every re-learn, such releases cost the bus
door scenes (bench/NOTES.md, ghosts, session 10).
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from firmware_config.scene import PixelLine, Scene
from sensors.background import BackgroundConfig, BackgroundModel
from sensors.frames import Frame, GrayImage
from sensors.lineslice import LineSlice, SliceConfig
from sensors.opposite import Swap, lanes_swapped, other_side, walked_towards
from sensors.people import PersonSize, PersonSizeConfig, PersonSizeModel
from sensors.personnet import PersonNet
from sensors.pixelpass import AreaReducer
from sensors.tracking import Blob, BlobConfig, Track, Tracker, TrackerConfig, find_blobs

__all__ = ["AnalyzerConfig", "DoorwayAnalyzer", "Passage", "Side", "TrackSummary", "Verifier"]

Side = Literal["inside", "outside", "unknown"]

# Scores a crossing about to be reported, 0..1: (working gray image, its
# foreground mask, the track's box x, y, w, h there, track id, crossing frame).
Verifier = Callable[[GrayImage, GrayImage, tuple[float, float, float, float], int, int], float]


class Passage(BaseModel):
    """A person crossed the threshold: ``out`` = leaving (from the inside side)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int = Field(description="Frame index at which the person crossed the line.")
    t: float = Field(description="Seconds since the first frame at that frame.")
    direction: Literal["out", "in"] = Field(description="out = leaving, in = entering.")
    track: int = Field(description="Id of the track that crossed.")
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, how clear the crossing was.")
    box: tuple[float, float, float, float] | None = Field(
        None, description="The crossing track's box in the frame nearest the crossing, "
        "normalized [x1, y1, x2, y2] in 0..1 of the analysed frame (the same for every "
        "resolution of the same picture); for evidence, it decides nothing.")


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
    at_door: int | None = Field(
        None, description="Last frame on which the track stood in the doorway band on the "
        "inside, having walked up to the line from inside (someone coming to the door from "
        "the home); None if it never did (passers-by, the door leaf, people from outside).")


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """One configuration for every camera; see the module docstring for the choices."""

    working_width: int = 320
    anchor_up: float = 0.0
    margin_fraction: float = 0.2
    min_margin_px: float = 3.0
    along_tolerance: float = 0.1
    # A crossing counts only where the floor point passes the line at least this
    # share of its length inside either end (``along_tolerance`` still widens
    # where a track counts as near the line). The line is the doorway, drawn on
    # the sill between the jambs: a body's centre passes half a shoulder width
    # (a fifth of a door) from a jamb at least, so what crosses at the line's
    # very end, or beyond it, did not walk through the door: a door leaf at its
    # hinge, a second track on the edge of someone already reported, a blob
    # coasting along the frame, someone walking away past the door's end.
    cross_inset: float = 0.05
    handover_reach: float = 0.6
    upright_elongation: float = 2.6
    compact_elongation: float = 1.6
    settle_time: float = 0.25
    band_settle_time: float = 0.5
    band_dating: bool = True
    protect_travel: float = 0.25
    duplicate_time: float = 1.0
    count_window: float = 0.3
    count_up: float = 0.5
    count_down: float = 0.8
    max_count: int = 4
    fragment_fraction: float = 0.45
    sample_travel: float = 1.0
    sample_reach: float = 0.1
    sample_height: float = 0.1
    sample_age: float = 1.0
    unknown_reference: float = 0.6
    reverse_time: float = 0.1
    handover_travel: float = 0.25
    view_window: float = 1.0
    origin_depth: float = 2.0
    # A track that was clearly on its old side, though less than
    # ``origin_depth`` deep (hidden in a bigger blob until near the line),
    # still crossed when its path spans the band widely: this many margins
    # from the deepest point before the crossing to the one after. Not for
    # tracks born at the picture's edge (walking along the sill from there).
    through_span: float = 4.0
    view_jump: float = 0.15
    # A floor point that moved more than this many box heights in one frame
    # did not walk there (a person walks a twentieth of their height a frame
    # at most): legs hidden behind a panel or a parked pram, blobs merging or
    # parting. A crossing decided on such a jump must stay on its new side for
    # ``band_settle_time`` rather than ``settle_time`` before it is reported.
    jump: float = 0.2
    view_flat: float = 0.5
    view_steep: float = 1.0
    view_evidence: float = 0.3
    recount_horizon: float = 120.0
    # A crossing is recounted (``_recount``) only when its blob was measured on
    # at least this share of the ``count_window`` frames before it was decided.
    recount_watched: float = 0.75
    # A blob taller than this many of one person's heights there is not
    # counted as several people by its area and width (``_observe``).
    count_height: float = 1.75
    inherit_time: float = 0.5
    # The learned check on crossings (:mod:`sensors.personnet`): an ONNX file
    # (``sensors.personnet.DEFAULT_MODEL`` is the shipped one), or None for
    # none; a crossing whose track's region scores below ``person_gate`` is
    # not reported. Off: on the tuning split it turns down none of the
    # analyzer's wrong passages (sensors/models/README.md).
    # A still track whose outline is an edge of the background rather than of
    # the picture (ratio below ``ghost_evidence``) is a ghost, and is no longer
    # protected from static absorption (``DoorwayAnalyzer._ghost``).
    ghost_still: float = 0.5
    ghost_jitter: float = 0.05
    ghost_every: float = 0.2
    ghost_evidence: float = 0.5
    person_model: str | None = None
    person_gate: float = 0.5
    # While the size model waits for several people (``people.min_people``), a
    # provisional one learned from whoever walked alone so far (one resident
    # going out is enough) weighs crossings: a blob lower than
    # ``provisional_fraction`` of that person's height there is reported with
    # confidence at most ``small_confidence``, below the agent's 0.5; not
    # dropped. Height, not area or width: the first "person" is often two
    # abreast, or the first one out with the door leaf they opened in their
    # blob (twice a person's width on the synthetic door), but not taller
    # than one. A house cat is a quarter of a person's height.
    provisional_fraction: float = 0.5
    small_confidence: float = 0.3
    person_every: float = 0.2
    # A track from the other side lost into a track's blob near the line
    # (:mod:`sensors.opposite`): it must have walked this many of its person
    # heights towards the line in the last ``view_window``, and the host's
    # floor point must come into the band and go back out within ``swap_time``.
    swap_approach: float = 0.1
    swap_time: float = 3.0
    # A lost track whose crossing has settled on its new side is reported once
    # it has coasted this long (seconds), not when it is dropped (the tracker's
    # ``coast_time``, 0.6 s); None: at the drop. Not at once: a blob lost for a
    # frame or three in a crowd is often found again, on its old side (0.1-0.15:
    # citybus_door_b +3 false passages; 0.3: umbrella_crossing's gain gone).
    # ... unless a live track that may yet cross holds its last box (its person
    # walked into that track's blob and may be counted with its group: kiwan's
    # arm-in-arm pair); then at the drop, as before (``DoorwayAnalyzer._merged``).
    coast_report: float | None = 0.2
    # Passages added by the line counter (sensors.lineslice): counted by the agent,
    # below a tracked crossing's usual 0.6-1.0.
    line_slice_confidence: float = 0.55
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    blobs: BlobConfig = field(default_factory=BlobConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    people: PersonSizeConfig = field(default_factory=PersonSizeConfig)
    line_slice: SliceConfig = field(default_factory=SliceConfig)
    # The tallest connected pieces of foreground at each row (a high quantile of
    # every piece the mask gives, before pieces are joined): their height caps
    # joins until one person's size is known (``DoorwayAnalyzer._person_height``).
    pieces: PersonSizeConfig = field(
        default_factory=lambda: PersonSizeConfig(min_samples=20, quantile=0.9))


@dataclass(slots=True)
class _Pending:
    """A crossing seen but not yet reported: the track must stay on the new side."""

    side: Side
    frame: int
    t: float
    along: float
    decided: int
    depth: float
    count: int
    confident: bool
    came_from: float = 0.0
    # The side margin (pixels) where the crossing was decided.
    margin: float = 0.0
    known: bool = True
    sizes: tuple[tuple[int, float, float, float], ...] = ()
    # Decided on a jump of the floor point (``AnalyzerConfig.jump``), not a walk.
    jumped: bool = False
    # Decided before one person's size was known, by a blob much smaller than
    # the provisional person there (``AnalyzerConfig.small_confidence``).
    small: bool = False


@dataclass(frozen=True, slots=True)
class _Recount:
    """A crossing reported before the scene knew one person's size: its
    blob is measured against that size once it is known."""

    frame: int
    t: float
    direction: Literal["out", "in"]
    track: int
    confidence: float
    reported: int
    sizes: tuple[tuple[int, float, float, float], ...]
    box: tuple[float, float, float, float] | None = None


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
    pending: _Pending | None = None
    against: int = 0
    elongation: float | None = None
    start: tuple[float, float] | None = None
    # The track's size (the larger of its box's sides) where ``start`` was taken.
    start_size: float = 0.0
    travel: float = 0.0
    d_min: float = float("inf")
    d_max: float = float("-inf")
    count: int = 1
    counts: list[tuple[int, int]] = field(default_factory=list)
    sizes: list[tuple[int, float, float, float]] = field(default_factory=list)
    # (frame, the blob's height over the provisional person's there, if any)
    # over the crossing window, while no person size is known.
    lows: list[tuple[int, float | None]] = field(default_factory=list)
    solo_since: int = 0
    # The end of the last window ``_view_sample`` looked at.
    view_end: int = -1
    last_along: float = 0.5
    last_h: float = 0.0
    vouched: bool = False
    family: int = 0
    fragment_born: bool = False
    inherited: bool = False
    # Inherited from the group it parted from (not a lost track's continuation).
    split: bool = False
    # The last frame (and time) the track was clearly on a side.
    clear_frame: int | None = None
    clear_t: float = 0.0
    # The side margin (pixels) on that frame, and whether the camera's view was
    # still unknown then (the reference point placed by the blob's shape alone).
    clear_margin: float = 0.0
    clear_viewless: bool = False
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    # Where this track itself first stood and how far it has walked since
    # (``start``/``travel`` may be inherited from the group it parted from).
    own_start: tuple[float, float] | None = None
    own_travel: float = 0.0
    # Whether this track has itself been clearly on a side since it was born.
    decided_own: bool = False
    # Born touching the picture's edge (part of the person may be outside it).
    edge_born: bool = False
    # Its family began in place, where nothing had moved since the picture was
    # first learned, after the stream had run a while: someone standing in the
    # first picture who set off (``DoorwayAnalyzer._stander``).
    stander: bool = False
    # The learned check's latest score of the track while a crossing was
    # pending, and the frame it was taken on (a track that ends coasting
    # reports without a region of its own to score).
    person_score: float | None = None
    person_frame: int = -1
    # The last frame it stood at the door from the inside (``TrackSummary.at_door``), and
    # how far (track heights) it walked towards the line from the inside to get there:
    # measured over runs of frames whose box did not jump (``far_run``: the farthest of
    # the current run), because a door leaf's box growing on the sill is no walk.
    at_door: int | None = None
    approach: float = 0.0
    far_run: float = 0.0
    # Whether it stands on a ghost (``DoorwayAnalyzer._ghost``), and when that was looked at.
    ghost: bool = False
    ghost_frame: int = -(10**9)
    # Where along the line the floor point was on the measurement before the last,
    # and its signed distances to the line over the last ``view_window`` (``Swap``).
    prev_along: float = 0.5
    d_hist: list[tuple[int, float]] = field(default_factory=list)
    # A track from the other side lost into this one's blob near the line
    # (:mod:`sensors.opposite`), and that track's line state.
    swap: Swap | None = None
    swap_member: _LineState | None = None


def _net_verifier(net: PersonNet) -> Verifier:
    """The network as a :data:`Verifier`."""
    def verify(gray: GrayImage, mask: GrayImage, box: tuple[float, float, float, float],
               track: int, frame: int) -> float:
        return net.score(gray, mask, box)
    return verify


# A history entry's frame (its first item), for bisection: C-level, no Python
# call per probe.
_frame_of = operator.itemgetter(0)


def _holds_third(box: tuple[float, float, float, float],
                 x: float, y: float, w: float, h: float) -> bool:
    """Whether the box at ``x, y`` (top left), ``w`` by ``h``, and ``box``
    (centre x, centre y, w, h) share a third of the smaller one's area."""
    cx, cy, bw, bh = box
    ix = min(cx + bw / 2, x + w) - max(cx - bw / 2, x)
    iy = min(cy + bh / 2, y + h) - max(cy - bh / 2, y)
    return ix > 0 and iy > 0 and ix * iy >= min(bw * bh, w * h) / 3.0


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two boxes (x, y, w, h) overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _typical(counts: Iterable[int]) -> int:
    """The median head count over the crossing window (one odd frame is not a pair)."""
    ordered = sorted(counts)
    return ordered[len(ordered) // 2] if ordered else 1


class DoorwayAnalyzer:
    """Feed frames one at a time with :meth:`feed`; call :meth:`finish` at the end.

    ``feed`` returns the passages decided on that frame (possibly dated a few
    frames back, at the moment of crossing); ``summaries`` lists finished
    tracks; ``tracks`` the live ones (for drawing).
    """

    def __init__(self, scene: Scene, fps: float, config: AnalyzerConfig | None = None,
                 verifier: Verifier | None = None) -> None:
        """Prepare for a stream at ``fps`` frames per second viewing ``scene``;
        ``verifier`` (else the config's ``person_model``, if any) checks crossings."""
        self.scene = scene
        self.fps = fps
        self.config = config or AnalyzerConfig()
        if verifier is None and self.config.person_model is not None:
            verifier = _net_verifier(PersonNet(self.config.person_model))
        self._verifier = verifier
        self._gray: GrayImage | None = None
        self._background = BackgroundModel(fps, self.config.background)
        self._tracker = Tracker(fps, self.config.tracker)
        self._line: PixelLine | None = None
        self._size = (0, 0)
        self._scale = 1.0
        # The frame size the reduction was prepared for, and the compiled one
        # (None: OpenCV's resize, already fast for whole factors).
        self._reducer: tuple[tuple[int, int], AreaReducer | None] | None = None
        self._states: dict[int, _LineState] = {}
        self.summaries: list[TrackSummary] = []
        self.frames = 0
        self.blobs: list[Blob] = []
        # Passages reported lately: (frame, direction, along, track, family,
        # half the reporting track's width along the line).
        self._recent: list[tuple[int, str, float, int, int, float]] = []
        self._sharing: dict[int, int] = {}
        self._people: PersonSizeModel | None = None
        self._pieces: PersonSizeModel | None = None
        self._provisional: PersonSizeModel | None = None
        # The camera's view from how people move (see ``_view_sample``):
        # regression sums of the blob top's motion on the bottom's, and the
        # vertical travel seen, in person heights.
        self._view_tb = 0.0
        self._view_bb = 0.0
        self._view_travel = 0.0
        self._recounts: list[_Recount] = []
        # Line states of tracks that ended recently, for ``_vouched``.
        self._vanished: list[_LineState] = []
        # The last foreground mask, kept for drawing and for looking at failures.
        self._last_mask: GrayImage | None = None
        # Crowds crossing as one blob, counted by the mask moving over the line
        # (:mod:`sensors.lineslice`), and the recent frames' times to date them.
        self._slice: LineSlice | None = None
        self._times: deque[tuple[int, float]] = deque(
            maxlen=round(3 * self.config.line_slice.wait * fps) + 2)
        # Where tracks have been since the picture was first learned (a quarter
        # size map of their boxes), and how often the background was learned.
        self._visited: np.ndarray | None = None
        self._learned = 0

    @property
    def tracks(self) -> list[Track]:
        """Live confirmed tracks, in working-image pixels (divide by ``scale`` for frame pixels)."""
        return [t for t in self._tracker.tracks if self._tracker.is_confirmed(t)]

    @property
    def at_door(self) -> dict[int, int]:
        """Live tracks that came to the door from the inside: track id -> the last frame
        they stood in the doorway band (see ``TrackSummary.at_door``)."""
        return {t.id: s.at_door for t in self.tracks
                if (s := self._states.get(t.id)) is not None and s.at_door is not None}

    @property
    def view_slope(self) -> float | None:
        """How far a walking person's head moves per pixel their feet move
        (about 0 for a camera facing the door, about 1 seen from steeply
        above); ``None`` until people have walked a body height vertically."""
        if self._view_bb <= 0.0 or self._view_travel < self.config.view_evidence:
            return None
        return self._view_tb / self._view_bb

    @property
    def scale(self) -> float:
        """Working-image pixels per frame pixel."""
        return self._scale

    def feed(self, frame: Frame) -> list[Passage]:
        """Analyse one frame; return the passages decided on it."""
        gray = self._prepare(frame.gray)
        seg = self._background.apply(gray, self._protected(gray))
        self._last_mask = seg.mask
        self._gray = gray
        if seg.relearned:
            self._learned += 1
        self.blobs = [] if seg.relearned else find_blobs(
            seg.mask, self.config.blobs, self._person_height, self._piece_sample)
        dropped = self._tracker.update(frame.index, self.blobs, allow_new=not seg.relearned)
        passages: list[Passage] = []
        self._sharing = {}
        for track in self._tracker.tracks:
            if track.blob is not None:
                self._sharing[id(track.blob)] = self._sharing.get(id(track.blob), 0) + 1
        for track in self._tracker.tracks:
            passages += self._observe(track, frame)
        self._visit()
        self._absorb(frame.index)
        for track in dropped:
            passages += self._close(track)
        if self._recounts:
            passages += self._recount(frame.index)
        if self.config.line_slice.enabled:
            passages += self._line_slice(frame, seg.mask, seg.relearned, passages)
        self.frames += 1
        return passages

    def finish(self) -> list[Passage]:
        """End of stream: close every live track; returns the crossings that were
        still waiting to be confirmed by the track staying on its new side."""
        passages: list[Passage] = []
        for track in self._tracker.tracks:
            passages += self._close(track)
        self._tracker.tracks = []
        return passages

    def _protected(self, gray: GrayImage) -> GrayImage | None:
        """Boxes of confirmed tracks that have moved towards or away from the
        line: people, whom static absorption must leave alone (a door leaf
        swings in place and never does) -- unless the track stands still on
        a ghost (``_ghost``)."""
        shape = gray.shape
        moving = [t for t in self._tracker.tracks if self._tracker.is_confirmed(t)
                  and (s := self._states.get(t.id)) is not None
                  and s.d_max - s.d_min >= self.config.protect_travel * t.h
                  and not self._ghost(t, s, gray)]
        for t in self._tracker.tracks if self._learned == 1 else ():
            s = self._states.get(t.id)
            if s is not None and s.ghost and s.stander and not t.missed and not any(
                    o is not t and _overlap(o.box, t.box) for o in self._tracker.tracks):
                # The imprint of someone who stood there in the first picture
                # (``_stander``), with nobody else near: let it go now. Waiting
                # for static absorption, a second unprotected, let the door leaf
                # or the next resident merge with it first (issue 14, class 3).
                self._background.release(t.box)
        if not moving:
            return None
        protect = np.zeros(shape[:2], np.uint8)
        for t in moving:
            x, y, w, h = t.box
            cv2.rectangle(protect, (int(x), int(y)), (int(x + w), int(y + h)), 255, -1)
        return protect

    def _ghost(self, track: Track, state: _LineState, gray: GrayImage) -> bool:
        """Whether a track standing still is on a ghost: the background still
        holds what was there (someone at the door when the picture was first
        learned, a door leaf absorbed shut that has opened since), so the
        outline is an edge of the background, not of the picture.

        The track walked (its person left the place, the track stayed on
        the imprint), so it is protected from absorption, and the ghost would
        stay foreground for good, merging with whoever comes by: it must be
        let go. Looked at only once the box has stood still a while, and
        then every ``ghost_every`` seconds.
        """
        cfg = self.config
        if track.missed:
            # Not seen on the last frame: the verdict stands until it is.
            return state.ghost
        k = max(2, round(cfg.ghost_still * self.fps))
        history = track.history
        # Still for k frames: compared with the latest measurement at least k (at most
        # 2k) frames earlier, not exactly k entries back, because the device drops
        # frames when analysis falls behind (as in ``_view_sample``); demanding k
        # consecutive frames never let a ghost go under CPU load.
        last = history[-1][0] if history else 0
        # The latest entry at least k frames before the last (entries are in frame
        # order): found by bisection, not by walking back k entries on every frame.
        i = bisect.bisect_right(history, last - k, key=_frame_of)
        before = history[i - 1] if i else None
        if before is None or last - before[0] > 2 * k or track.shared:
            state.ghost = False
            return False
        _, cx, cy, w, h = history[-1]
        _, cx0, cy0, w0, h0 = before
        size = max(w, h, 1.0)
        if max(abs(cx - cx0), abs(cy - cy0), abs(w - w0), abs(h - h0)) > cfg.ghost_jitter * size:
            state.ghost = False
            return False
        if self._last_mask is not None and (
                self.frames - state.ghost_frame >= cfg.ghost_every * self.fps):
            state.ghost_frame = self.frames
            evidence = self._background.contour_evidence(gray, self._last_mask, track.box)
            state.ghost = evidence is not None and evidence < cfg.ghost_evidence
        return state.ghost

    def _prepare(self, gray: GrayImage) -> GrayImage:
        h, w = gray.shape[:2]
        if self._line is None:
            self._scale = min(1.0, self.config.working_width / w)
        if self._scale < 1.0:
            size = (round(w * self._scale), round(h * self._scale))
            if self._reducer is None or self._reducer[0] != (w, h):
                # OpenCV's INTER_AREA, compiled where OpenCV runs it as a scalar
                # loop (factors that are not whole, 384 -> 320 px).
                self._reducer = ((w, h), AreaReducer((w, h), size)
                                 if AreaReducer.applies((w, h), size) else None)
            if self._reducer[1] is not None:
                gray = self._reducer[1](gray)
            else:
                gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), np.uint8)
        if self._line is None:
            self._line = self.scene.in_pixels(gray.shape[1], gray.shape[0])
            self._people = PersonSizeModel(gray.shape[0], self.config.people)
            self._pieces = PersonSizeModel(gray.shape[0], self.config.pieces)
            self._provisional = PersonSizeModel(
                gray.shape[0], replace(self.config.people, min_people=1))
            self._size = (gray.shape[1], gray.shape[0])
        return gray

    def _observe(self, track: Track, frame: Frame) -> list[Passage]:
        """Update the track's side of the line from its latest measurement.

        A crossing is a change of the track's *confident* side (the reference
        point farther than a margin from the line). It is held as pending
        until the track has stayed on the new side for ``settle_time`` (or
        ends there): someone who steps over the sill and straight back, or a
        blob that wobbles on the line as people merge and part, reports nothing.
        """
        assert self._line is not None
        assert self._people is not None
        cfg = self.config
        if not track.history or track.history[-1][0] != frame.index:
            return self._coasting(track, frame)
        state = self._states.get(track.id)
        if state is None:
            state = self._states[track.id] = self._born(track)
        _, cx, cy, _, h = track.history[-1]
        self._view_sample(track, state, frame.index)
        up = self._anchor(track)
        y = cy + h / 2.0 - up * h
        d = self._line.signed_distance(cx, y)
        along = self._line.along(cx, y)
        if state.split and len(track.history) == 1 and state.side != "unknown":
            self._split_across(track, state, y, d)
            state = self._states[track.id]
        if not track.shared:
            state.d_min, state.d_max = min(state.d_min, d), max(state.d_max, d)
        elif state.d_max - state.d_min < cfg.protect_travel * h:
            # Carried by another's blob without ever having walked itself (a
            # door leaf, a patch of light): its position is the other's.
            return []
        tol = cfg.along_tolerance
        if -tol <= along <= 1 + tol:
            state.closest = min(state.closest, abs(d) / max(h, 1.0))
            state.farthest = max(state.farthest, abs(d) / max(h, 1.0))
            self._approach(track, state, d)
        blob = track.blob
        sharing = self._sharing.get(id(blob), 1) if blob is not None else 1
        if state.start is None:
            state.start, state.start_size = (cx, y), max(track.w, h)
        if not track.shared:
            moved = math.hypot(cx - state.start[0], y - state.start[1])
            state.travel = max(state.travel, moved)
            if state.own_start is None:
                state.own_start = (cx, y)
            own = math.hypot(cx - state.own_start[0], y - state.own_start[1])
            state.own_travel = max(state.own_travel, own)
        # Only tracks that walked a body length and a tenth of the picture
        # teach the model: speckle and registration residue jitter in place.
        # The body length is the one where it started: someone walking towards
        # a camera facing the door grows as they come and would never walk
        # their own, ever larger, height.
        size = min(max(track.w, h), state.start_size or max(track.w, h))
        walked = state.travel >= max(cfg.sample_travel * size,
                                     cfg.sample_reach * math.hypot(*self._size))
        # A camera watching a doorway sees a person at least a tenth of the
        # picture tall; smaller walking things are speckle or residue.
        tall = h >= cfg.sample_height * self._size[1]
        # and it has been seen for a while: speckle comes and goes.
        tall = tall and track.hits >= cfg.sample_age * self.fps
        if (blob is not None and not track.shared and sharing == 1 and walked and tall
                and self._tracker.is_confirmed(track) and not self._at_border(blob)):
            self._people.add(y, blob.area, blob.h, track.id, blob.w)
            if self._provisional is not None:
                self._provisional.add(y, blob.area, blob.h, track.id, blob.w)
        person = self._people.at(y)
        # Area per track on its blob: tracks carried through a merge count themselves.
        area = blob.area / sharing if blob is not None else 0.0
        fragment = False
        if person is not None and blob is not None:
            ratio = area / max(person.area, 1.0)
            # A bag, a shadow or a fragment of someone else adds area but
            # hardly width; people abreast add both. The blob holds several
            # people only when its width says so too.
            if person.w > 0.0:
                ratio = min(ratio, blob.w / sharing / person.w)
            fragment = ratio < cfg.fragment_fraction and not track.shared
            # People abreast are about one person tall: a blob much taller than
            # one person there is someone merged with something in depth (the
            # door leaf, sunlight on the step, the crush queueing behind them
            # at a bus door), whose area and width count no heads.
            deep = blob.h > cfg.count_height * max(person.h, 1.0)
            if ratio >= state.count + 1 - cfg.count_up and not deep:
                state.count = min(cfg.max_count, max(state.count + 1, int(ratio + cfg.count_up)))
            elif ratio < state.count - cfg.count_down:
                state.count = max(1, state.count - 1)
        state.counts.append((frame.index, state.count))
        keep = frame.index - round(cfg.count_window * self.fps)
        while state.counts and state.counts[0][0] < keep:
            state.counts.pop(0)
        if person is None and blob is not None:
            # Kept to count the blob's people once one person's size is known.
            state.sizes.append((frame.index, y, area, blob.w / sharing))
            while state.sizes and state.sizes[0][0] < keep:
                state.sizes.pop(0)
            assert self._provisional is not None
            guess = self._provisional.at(y)
            state.lows.append((frame.index, None if guess is None else blob.h / max(guess.h, 1.0)))
            while state.lows and state.lows[0][0] < keep:
                state.lows.pop(0)
        # How far the floor point moved across the line per frame since the last
        # measurement (frames may have been dropped in between).
        step = (abs(d - state.last_d) / (frame.index - state.last_frame)
                if state.last_d is not None and frame.index > state.last_frame else 0.0)
        if state.last_d is not None and (d > 0) != (state.last_d > 0):
            # Interpolate the zero crossing between the two measurements.
            k = state.last_d / (state.last_d - d)
            state.cross_frame = round(state.last_frame + k * (frame.index - state.last_frame))
            state.cross_t = state.last_t + k * (frame.t - state.last_t)
            state.cross_along = along
        state.last_d, state.last_frame, state.last_t = d, frame.index, frame.t
        state.prev_along = state.last_along
        state.last_along, state.last_h = along, person.h if person is not None else h
        state.d_hist.append((frame.index, d))
        while state.d_hist and frame.index - state.d_hist[0][0] > cfg.view_window * self.fps:
            state.d_hist.pop(0)
        state.last_box = (cx, cy, track.w, h)
        # The margin scales with one person at this place, not with the blob:
        # a merged blob is too tall, a fragment too short.
        # Before the scene has taught one person's size, the blob's own height
        # stands in, shrunk: a blob that is not one person is usually bigger
        # (merged with a neighbour or a door leaf) and its margin would never
        # be reached.
        reference = person.h if person is not None else cfg.unknown_reference * h
        margin = max(cfg.min_margin_px, cfg.margin_fraction * reference)
        if (state.origin == "inside" and not fragment and d <= margin
                and -tol <= along <= 1 + tol and abs(d) <= cfg.handover_reach * max(h, 1.0)
                and state.approach >= cfg.handover_travel
                and self._tracker.is_confirmed(track)):
            # At the door from the inside, the way a handover is (walked towards the
            # line, within reach of it, not over it): a resident answering the
            # chime. The door leaf never walks up to the line; passers-by and
            # visitors come from outside.
            state.at_door = frame.index
        pending = state.pending
        if abs(d) <= margin or fragment:
            # A fragment (someone half out of the picture, a head alone) has
            # no reliable floor point: it decides no side.
            if state.swap is not None and not fragment:
                if state.swap.band is None and state.clear_frame is not None:
                    state.swap.band = frame.index
                    state.swap.left = (state.clear_frame, state.clear_t)
                elif state.swap.band is None and state.swap.left is not None:
                    # Handed on by a host lost in turn: it was clearly out until then.
                    state.swap.band = frame.index
                state.swap.back = None
            if (state.inherited and not state.decided_own
                    and frame.index - track.first_frame > cfg.inherit_time * self.fps
                    and not self._walked_itself(track, state)):
                # A part that stands still on the line after its group walked
                # on is no person who parted there (they walk on) but what the
                # group left behind (the door leaf it dragged, its ghost):
                # it keeps no history to cross back from.
                self._states[track.id] = _LineState(family=track.id)
                return []
            if (pending is not None and state.side == pending.side and state.against == 0
                    and frame.index - pending.decided >= cfg.band_settle_time * self.fps
                    and self._walked_itself(track, state)):
                # Decided on the new side, then back in the band without going
                # back over: what is left of the blob there (legs lost against
                # a floor of their colour, a head alone) has no floor point,
                # but the person already crossed. Waiting for the track to end
                # reported such crossings seconds late; the same decision as at
                # the track's end is taken now, after a longer settling.
                return self._emit(track, state)
            return []
        state.decided_own = True
        side: Side = "outside" if d > 0 else "inside"
        # The last frame the track was clearly on a side, before this one.
        left_frame, left_t, left_margin = state.clear_frame, state.clear_t, state.clear_margin
        viewless, state.clear_viewless = state.clear_viewless, self._view_bb <= 0.0
        state.clear_frame, state.clear_t, state.clear_margin = frame.index, frame.t, margin
        if state.origin == "unknown":
            state.origin = side
        if pending is not None and side != pending.side:
            # Back on the side it came from before the crossing was confirmed;
            # a frame or two there is a blob losing its legs, not a step back.
            state.against += 1
            if state.against < max(2, round(cfg.reverse_time * self.fps)):
                return []
            state.pending, state.side, state.against = None, side, 0
            state.depth = abs(d) / margin
            return []
        state.against = 0
        previous, state.side = state.side, side
        if previous == "unknown" or previous == side:
            state.depth = max(state.depth, abs(d) / margin)
            if state.swap is not None and state.swap.band is not None:
                return self._swapped(track, state, frame, along, abs(d) / margin)
            # A crossing decided on a jump waits longer: the blob that lost its
            # legs behind something gets them back within a few frames.
            settle = cfg.band_settle_time if pending is not None and pending.jumped else (
                cfg.settle_time)
            if (pending is not None and frame.index - pending.decided >= settle * self.fps
                    and self._walked_itself(track, state) and not self._shallow(state, pending)):
                return self._emit(track, state)
            return []
        if state.ghost:
            # It stood still on a ghost up to the last frame (``_ghost``): the
            # imprint breaking up moves its box, nobody walks over the line.
            state.depth = abs(d) / margin
            return []
        if state.stander and viewless and self._view_bb > 0.0 and self._reanchored(
                track, left_frame, up, d, left_margin):
            # Someone who stood in the first picture, placed on the old side by
            # their blob's shape (one blob with their imprint) before the view
            # was known: with the reference point placed as the view now says,
            # they were never clearly there. The point moved, nobody crossed.
            state.depth = abs(d) / margin
            return []
        if state.swap is not None and state.swap_member is not None:
            # Over to the member's side while it is in the blob: the track is
            # now on the member (its blob's bottom is the member's feet, or the
            # blob parted and the track took the member's part), not a walk.
            self._take_member(track, state, frame, d, along)
            return []
        # A track continuing another's history (``_born``) is that person's,
        # already confirmed; it must only be confirmed itself by the report.
        inset = cfg.cross_inset
        confident = inset <= state.cross_along <= 1 - inset and (
            self._tracker.is_confirmed(track) or state.inherited)
        cross_frame, cross_t = state.cross_frame, state.cross_t
        if cfg.band_dating and left_frame is not None and left_frame < frame.index:
            # Dated halfway through the band: from the last frame clearly on
            # the old side to the first clearly on the new one.
            cross_frame = round((left_frame + frame.index) / 2.0)
            cross_t = (left_t + frame.t) / 2.0
        state.pending = _Pending(
            side=side,
            frame=cross_frame,
            t=cross_t,
            along=state.cross_along,
            decided=frame.index,
            depth=min(state.depth, abs(d) / margin),
            count=_typical(c for _, c in state.counts),
            confident=confident,
            came_from=state.depth,
            margin=margin,
            known=person is not None,
            sizes=tuple(state.sizes),
            jumped=step > cfg.jump * max(h, 1.0),
            small=person is None and self._small(state),
        )
        state.depth = abs(d) / margin
        state.person_score = None
        self._check_person(track, state, cross_frame, self.frames)
        return []

    def _coasting(self, track: Track, frame: Frame) -> list[Passage]:
        """A lost track (coasting on its prediction) whose crossing has settled:
        report it now rather than when the track is dropped.

        The track was last seen on its new side and nothing has brought it
        back to the old one; waiting for it to be dropped (``coast_time``)
        only made the report that much later. A crossing whose origin is
        still in doubt (:meth:`_shallow`) waits for the track's end as before
        (what vouches for it is decided there), and so does one whose person
        walked into the blob of a track that may yet cross (:meth:`_merged`).
        """
        cfg = self.config
        state = self._states.get(track.id)
        if (cfg.coast_report is None or state is None or track.missed <= 0
                or track.missed < cfg.coast_report * self.fps):
            return []
        pending = state.pending
        if pending is None or state.side != pending.side or state.against:
            return []
        settle = cfg.band_settle_time if pending.jumped else cfg.settle_time
        if (frame.index - pending.decided < settle * self.fps
                or not self._tracker.is_confirmed(track) or self._shallow(state, pending)):
            return []
        if self._merged(state.last_box, track.id, pending.side):
            return []
        return self._emit(track, state, ending=True)

    def _merged(self, box: tuple[float, float, float, float], own: int, side: Side) -> bool:
        """Whether a live track's box (other than ``own``'s) holds a third of
        ``box`` (centre x, centre y, w, h) and that track may yet report a
        crossing to ``side``: the lost track's person walked into its blob, and
        it may report them with its group."""
        for other in self._tracker.tracks:
            if other.id == own or other.missed or not self._tracker.is_confirmed(other):
                continue
            state = self._states.get(other.id)
            if state is not None and state.side == side and state.pending is None:
                # Settled on that side already, with no crossing of its own
                # pending: it will report nobody there, so it holds nothing back
                # (counting it: 2 more passages late on the tuning split, same score).
                continue
            if _holds_third(box, *other.box):
                return True
        return False

    def _reanchored(self, track: Track, left_frame: int | None, up: float, d: float,
                    margin: float) -> bool:
        """Whether the track's box on ``left_frame`` (its last frame clearly on
        the old side), with its reference point placed as it is now (``up``
        box heights above the bottom), was no longer clearly on the old side
        (``margin``: the margin on that frame).

        The reference point moves within the box as the view is learned
        (``_anchor``): someone standing just outside the sill in the first
        picture, one wide blob with their imprint and shadow, is anchored at
        its middle, inside, until the view is learned, and then at its feet,
        outside, without anything having crossed the line. With the same
        anchor the old box is where it was measured, clearly on the old side,
        so only a moved reference point makes this true.
        """
        assert self._line is not None
        if left_frame is None:
            return False
        old = next((m for m in reversed(track.history) if m[0] <= left_frame), None)
        if old is None:
            return False
        _, ocx, ocy, _, oh = old
        od = self._line.signed_distance(ocx, ocy + oh / 2.0 - up * oh)
        # Towards the new side, in pixels: no longer clearly on the old side.
        return (od if d > 0 else -od) > -margin

    def _visit(self) -> None:
        """Mark the boxes of the tracks seen on this frame as visited (until the
        background is learned afresh, after which nothing is a first picture's)."""
        if self._learned > 1:
            self._visited = None
            return
        if self.frames % 4:
            # Every 4th frame is enough: a walker's box moves a fraction of itself a frame.
            return
        if self._visited is None:
            self._visited = np.zeros(((self._size[1] + 3) // 4, (self._size[0] + 3) // 4), np.uint8)
        for t in self._tracker.tracks:
            if t.blob is not None:
                x, y, w, h = t.box
                cv2.rectangle(self._visited, (int(x) // 4, int(y) // 4),
                              (int(x + w) // 4, int(y + h) // 4), 1, -1)

    def _stander(self, track: Track) -> bool:
        """Whether a new track (of no other's family) began in place on the
        stream's first picture where no track had been, after the stream ran
        ``ghost_still``: someone who stood there in the first picture (part of
        the background) and set off; their blob is one with their imprint.
        """
        if self._learned != 1 or self._visited is None:
            return False
        if self.frames < self.config.ghost_still * self.fps:
            return False
        x, y, w, h = track.box
        cell = self._visited[int(y) // 4:int(y + h) // 4 + 1, int(x) // 4:int(x + w) // 4 + 1]
        return cell.size > 0 and cv2.countNonZero(cell) <= 0.1 * cell.size

    def _small(self, state: _LineState) -> bool:
        """Whether the blob over the crossing window was much lower than the
        provisional person there (``AnalyzerConfig.provisional_fraction``)."""
        if not state.lows or any(r is None for _, r in state.lows):
            return False
        ratios = sorted(r for _, r in state.lows if r is not None)
        return ratios[len(ratios) // 2] < self.config.provisional_fraction

    def _approach(self, track: Track, state: _LineState, d: float) -> None:
        """Update how far the track walked up to the line from the inside (``approach``).

        Only runs of frames in which its box kept its height count: a blob that
        merges, parts or grows at once (the door leaf widening as it swings shut
        on the sill, first seen as a short piece) moves its floor point without
        anybody walking.
        """
        h = track.history[-1][4]
        here = abs(d) / max(h, 1.0)
        jumped = len(track.history) < 2 or track.shared or (
            abs(h - track.history[-2][4]) > self.config.view_jump * max(track.history[-2][4], 1.0))
        if d > 0 or jumped:
            state.far_run = here if d <= 0 else 0.0
        else:
            state.far_run = max(state.far_run, here)
            state.approach = max(state.approach, state.far_run - here)

    def _split_across(self, track: Track, state: _LineState, y: float, d: float) -> None:
        """Drop the group's history from a part that parted from it beyond the
        line's band on the other side of the group's floor point.

        A group's reference point is its lowest (or central) point; a part
        that splits off elsewhere in its box is not where that point was: the
        door leaf a person pushed, someone standing inside behind a person
        who is outside (seen from the front, "inside" is also "higher in the
        picture"), a head above a body. Such a part did not walk across the
        line, so it must not start life as a pending crossing; it keeps its
        own side from here on, like any new track.
        """
        assert self._people is not None
        person = self._people.at(y)
        h = track.history[-1][4]
        reference = person.h if person is not None else self.config.unknown_reference * h
        margin = max(self.config.min_margin_px, self.config.margin_fraction * reference)
        side: Side = "outside" if d > 0 else "inside"
        if abs(d) > margin and side != state.side:
            self._states[track.id] = _LineState(family=track.id)

    def _born(self, track: Track) -> _LineState:
        """Line state of a new track: a part of a group that parted keeps
        where the group came from (its side, how deep it was there, how far
        it walked), so a person who walked in a group until near the line
        and separated there still crosses from where they really came from."""
        parent = self._states.get(track.parent) if track.parent is not None else None
        if parent is None:
            parent = self._lost_here(track)
        if parent is None:
            edge = track.blob is not None and self._at_border(track.blob)
            return _LineState(family=track.id, edge_born=edge,
                              stander=not edge and self._stander(track))
        return _LineState(
            family=parent.family, edge_born=parent.edge_born, stander=parent.stander,
            fragment_born=self._fragment(track), inherited=True,
            split=track.parent is not None and parent is self._states.get(track.parent),
            side=parent.side, origin=parent.origin, last_d=parent.last_d,
            last_frame=parent.last_frame, last_t=parent.last_t,
            cross_frame=parent.cross_frame, cross_t=parent.cross_t,
            cross_along=parent.cross_along, depth=parent.depth, closest=parent.closest,
            clear_frame=parent.clear_frame, clear_t=parent.clear_t,
            clear_margin=parent.clear_margin, clear_viewless=parent.clear_viewless,
            farthest=parent.farthest, start=parent.start, travel=parent.travel,
            start_size=parent.start_size,
            d_min=parent.d_min, d_max=parent.d_max, elongation=parent.elongation,
        )

    def _through(self, state: _LineState, pending: _Pending) -> bool:
        """Whether a crossing from less than ``origin_depth`` went through the band.

        Someone hidden in a bigger blob until near the line (one blob with
        the door leaf they opened, a fast walker) is first seen on their own
        a little way from it; walking on well beyond it on the other side,
        their path spans the band as no one walking along the sill or
        appearing on it does. Only a track's first crossing, from where it
        was first seen: one straight back is a step on the sill.
        """
        return (not state.edge_born and state.passages == 0 and pending.side != state.origin
                and self._span(state, pending) >= self.config.through_span)

    @staticmethod
    def _span(state: _LineState, pending: _Pending) -> float:
        """How wide the track's path spans the band, in margins: from the
        deepest point before the crossing to the deepest after.

        Each point's depth is measured against the margin where it stood, and
        also the whole path (pixels) against the margin at the crossing: seen
        by a camera facing the door, someone walking towards it grows, and
        so does the margin around them, so their depth in their own margins
        stays low however far they walk; measured at the line, where the
        band is, their path leaves it far behind.
        """
        own = pending.came_from + state.depth
        if pending.margin <= 0.0 or state.d_max < state.d_min:
            return own
        return max(own, (state.d_max - state.d_min) / pending.margin)

    def _shallow(self, state: _LineState, pending: _Pending) -> bool:
        """A crossing from less than ``origin_depth`` whose path may still
        prove to go through the band (:meth:`_through`): wait for it."""
        return (pending.came_from < self.config.origin_depth and not state.edge_born
                and state.passages == 0 and pending.side != state.origin
                and not self._through(state, pending))

    def _walked_itself(self, track: Track, state: _LineState) -> bool:
        """Whether a track that took over a group's history has moved on its own.

        A part left behind when a blob parts inherits the group's side; a
        door leaf left standing in the doorway after the person who dragged
        it along walked out would then "cross back". A person moves; the
        leaf stays (or swings shut in place), so an inherited track reports
        only once its own reference point has travelled a fraction of its
        height since it was born (the crossing waits, it is not dropped,
        until then or until the track ends).
        """
        if not state.inherited:
            return True
        return state.own_travel >= self.config.protect_travel * max(track.box[3], 1.0)

    def _fragment(self, track: Track) -> bool:
        """Whether the track's blob is much smaller than one person there
        (area or width), once the scene knows one person's size."""
        assert self._people is not None
        blob = track.blob
        if blob is None:
            return False
        slope = self.view_slope
        up = 0.0 if slope is None else self._by_view(slope)
        person = self._people.at(blob.bottom - (0.5 * up) * blob.h)
        if person is None:
            return False
        ratio = blob.area / max(person.area, 1.0)
        if person.w > 0.0:
            ratio = min(ratio, blob.w / person.w)
        return ratio < self.config.fragment_fraction

    def _lost_here(self, track: Track) -> _LineState | None:
        """The state of a track lost just before where ``track`` starts.

        A track whose blob jumped (people merging or parting) coasts on a
        velocity that was bookkeeping, not walking, and loses its person
        while a new track picks them up where they were: the new track is
        the lost one's continuation (once).
        """
        window = round(self.config.tracker.coast_time * self.fps)
        _, cx, cy, _, _ = track.history[-1]
        lost = [self._states.get(t.id) for t in self._tracker.tracks if t.missed > 0]
        for state in [*lost, *self._vanished]:
            if state is None or state.vouched or state.last_d is None:
                continue
            bx, by, bw, bh = state.last_box
            if (track.first_frame - state.last_frame <= window
                    and abs(cx - bx) <= 0.5 * bw and abs(cy - by) <= 0.5 * bh):
                state.vouched = True
                return state
        return None

    def _view_sample(self, track: Track, state: _LineState, index: int) -> None:
        """Learn the camera's view from how the top and bottom of walking blobs move.

        Seen from the front (a camera facing a door at about head height or
        a little above) someone walking towards or away from the camera moves
        their feet up and down the picture much more than their head: the
        head stays near the horizon. Seen from steeply above, head and feet
        move together. The slope of the top's motion on the bottom's,
        pooled over every walking track in non-overlapping windows, is a
        property of the camera, unlike a blob's elongation, which people
        abreast or a door leaf merged with a person change.
        """
        cfg = self.config
        _, _, cy, _, h = track.history[-1]
        if track.shared or len(track.history) < 2:
            state.solo_since = index + 1
            return
        _, _, _, _, h_prev = track.history[-2]
        if abs(h - h_prev) > cfg.view_jump * max(h_prev, 1.0):
            # A merge or a split changes the box at once; walking never does.
            state.solo_since = index
            return
        k = max(2, round(cfg.view_window * self.fps))
        solo = index - state.solo_since
        if solo < k:
            return
        # Windows of k frames from ``solo_since`` on, one sample each. The device
        # drops frames when analysis falls behind (agent/camera.py), so neither
        # the window's last frame nor its first need have been seen: the sample
        # is taken on the first frame at or after the window's end, from the
        # latest measurement at least k frames earlier. (Demanding exactly k
        # frames starved the view of samples under CPU load; the anchor then
        # fell back on blob shape, a walker with their shadow was dated a third
        # of their height above the feet, and the corridor's person size
        # poisoned the doorway's: every exit lost after a few minutes.)
        end = state.solo_since + solo // k * k
        if end <= state.view_end:
            return
        state.view_end = end
        past = next((m for m in reversed(track.history) if m[0] <= index - k), None)
        if past is None or past[0] < max(state.solo_since, index - 2 * k):
            return
        _, _, cy0, _, h0 = past
        if not self._tracker.is_confirmed(track):
            return
        # A blob cut by the picture's edge has a fixed top or bottom there.
        rows = self._size[1]
        if min(cy - h / 2.0, cy0 - h0 / 2.0) <= 1 or max(cy + h / 2.0, cy0 + h0 / 2.0) >= rows - 1:
            return
        top = (cy - h / 2.0) - (cy0 - h0 / 2.0)
        bottom = (cy + h / 2.0) - (cy0 + h0 / 2.0)
        self._view_tb += top * bottom
        self._view_bb += bottom * bottom
        self._view_travel += abs(bottom) / max(h, 1.0)

    def _anchor(self, track: Track) -> float:
        """Height of the reference point above the blob's bottom, in blob heights.

        The point of a person on the floor is what the threshold (drawn on
        the floor) must be compared with. Seen from the front or obliquely a
        standing person is an upright blob whose feet are its bottom; seen
        from steeply above, the person is a compact blob lying over its own
        footprint, whose floor point is its centre. Which of the two views
        the camera has is learned from how people move (``_view_sample``);
        until people have moved enough, the track's elongation (height /
        width, averaged over about a second) stands in, without a
        per-camera setting.
        """
        cfg = self.config
        state = self._states[track.id]
        _, _, _, w, h = track.history[-1]
        ratio = h / max(w, 1.0)
        if state.elongation is None:
            state.elongation = ratio
        else:
            state.elongation += (ratio - state.elongation) / max(1.0, self.fps)
        elongation = state.elongation
        span = cfg.upright_elongation - cfg.compact_elongation
        k = (cfg.upright_elongation - elongation) / span
        by_shape = min(1.0, max(0.0, k))
        if self._view_bb <= 0.0:
            return cfg.anchor_up + (0.5 - cfg.anchor_up) * by_shape
        by_motion = self._by_view(self._view_tb / self._view_bb)
        weight = self._view_travel / (self._view_travel + cfg.view_evidence)
        mixed = weight * by_motion + (1.0 - weight) * by_shape
        return cfg.anchor_up + (0.5 - cfg.anchor_up) * mixed

    def _by_view(self, slope: float) -> float:
        """0 for a camera facing the door (feet), 1 seen from above (centre)."""
        cfg = self.config
        return min(1.0, max(0.0, (slope - cfg.view_flat) / (cfg.view_steep - cfg.view_flat)))

    def _emit(self, track: Track, state: _LineState, ending: bool = False) -> list[Passage]:
        """Report a pending crossing (once per person the blob holds); ``ending``:
        the track has ended."""
        pending, state.pending = state.pending, None
        if pending is None or not pending.confident or not self._tracker.is_confirmed(track):
            return []
        if not self._walked_itself(track, state) and not (ending and state.ghost):
            # (A track that ends as its ghost is absorbed was the imprint of
            # someone there when the picture was learned: the history it took
            # over is that person's, who did walk.)
            return []
        if (pending.came_from < self.config.origin_depth and not self._through(state, pending)
                and not self._vouched(pending)):
            # Never clearly on the side it came from: it appeared on the line
            # (at the picture's edge, a fragment) or walked along it.
            return []
        assert self._line is not None
        direction: Literal["out", "in"] = "out" if pending.side == "outside" else "in"
        # A fragment of a person (or a track that took over another's blob)
        # crossing at the same place and moment is the same person again.
        reach = 0.5 * max(track.w, 1.0) / self._line.length
        window = self.config.duplicate_time * self.fps
        for frame, kind, along, tid, family, half in self._recent:
            # Within half the wider of the two: a piece of a person (a head,
            # legs, the shadow) crosses inside the person's own width; people
            # abreast are a whole width apart.
            if (kind == direction and tid != track.id and abs(frame - pending.frame) <= window
                    and (abs(along - pending.along) <= max(reach, half)
                         or (state.fragment_born and family == state.family))):
                # (A piece that broke off a person is that person wherever
                # it crosses, when the rest of them was reported already.)
                return []
        if track.missed == 0:
            self._check_person(track, state, pending.frame, self.frames)
        if state.person_score is not None and state.person_score < self.config.person_gate:
            # Not a whole person by the learned check: a piece of someone
            # reported already, a shadow, a door leaf.
            return []
        confidence = min(1.0, 0.5 + 0.1 * pending.depth + 0.02 * track.hits)
        if pending.small:
            # Perhaps a pet: reported, but not counted by the agent.
            confidence = min(confidence, self.config.small_confidence)
        box = self._box_at(track, pending.frame)
        state.passages += 1
        found: list[Passage] = []
        # Extra people in the blob who were already reported on their own
        # tracks (one walked a step ahead, then their blobs merged) are not
        # counted twice.
        # One entry per person reported, so a neighbour track that already
        # reported two people takes two off this count.
        near = [tid for frame, kind, along, tid, _, _ in self._recent
                if kind == direction and tid != track.id and abs(frame - pending.frame) <= window
                and abs(along - pending.along) <= 2.0 * reach]
        # People who merged into the blob just as it crossed (one of a pair a
        # step behind, lost in the band) are counted on the new side too.
        # Only soon after the decision, though: a report that waited (a path
        # still proving it went through the band) comes where the track's blob
        # is no longer measured near the line; seen by a camera facing the door,
        # someone walking towards it is by then far bigger than the person size
        # learned for that row, and one person would count as two or three.
        soon = track.last_frame - pending.decided <= (
            self.config.settle_time + self.config.count_window) * self.fps
        count = max(1, max(pending.count, state.count if soon else 1) - len(near))
        for i in range(count):
            self._recent.append(
                (pending.frame, direction, pending.along, track.id, state.family, reach))
            found.append(Passage(
                frame=pending.frame,
                t=round(pending.t, 3),
                direction=direction,
                track=track.id if i == 0 else -track.id * 10 - i,
                confidence=round(confidence * (1.0 if i == 0 else 0.8), 3),
                box=box,
            ))
        horizon = pending.frame - 4 * window
        self._recent = [r for r in self._recent if r[0] >= horizon]
        # Recounted only when the blob was measured over most of the crossing
        # window: a blob seen on a few frames there (a track born at the line or
        # re-associated across the picture, a door leaf opening into sunlight,
        # the exposure swinging with it; citybus_door_b) is no steady measure
        # of how many people it holds, and against one person's size learned
        # later it counted as two to four (15 false passages on that clip).
        watched = len(pending.sizes) >= self.config.recount_watched * (
            self.config.count_window * self.fps)
        if not pending.known and pending.sizes and watched:
            self._recounts.append(_Recount(
                frame=pending.frame, t=pending.t, direction=direction, track=track.id,
                confidence=confidence, reported=count + len(near), sizes=pending.sizes,
                box=box))
        return found

    def _check_person(self, track: Track, state: _LineState, crossing: int, now: int) -> None:
        """Score the region around the track (measured on this frame) with the
        learned check, at most every ``person_every`` seconds."""
        if (self._verifier is None or self._gray is None or self._last_mask is None
                or (state.person_score is not None
                    and now - state.person_frame < self.config.person_every * self.fps)):
            return
        state.person_score = self._verifier(self._gray, self._last_mask, track.box, track.id,
                                            crossing)
        state.person_frame = now

    def live_box(self, track_id: int) -> tuple[float, float, float, float] | None:
        """The latest box of live track ``track_id`` (normalized like ``Passage.box``), if any."""
        track = next((t for t in self._tracker.tracks if t.id == track_id), None)
        if track is None or not track.history:
            return None
        return self._box_at(track, track.history[-1][0])

    def _box_at(self, track: Track, frame: int) -> tuple[float, float, float, float] | None:
        """The track's box on the measured frame nearest ``frame``, normalized to the picture.

        Evidence only (the alert's picture is cropped to it): the frame kept as
        evidence is the one nearest the crossing. A track born after the
        crossing (it took over another's history) gives its first box.
        """
        history = track.history
        if not history:
            return None
        i = bisect.bisect_left(history, frame, key=lambda entry: entry[0])
        near = [history[j] for j in (i - 1, i) if 0 <= j < len(history)]
        _, cx, cy, w, h = min(near, key=lambda entry: abs(entry[0] - frame))
        width, height = self._size
        x1, x2 = max(0.0, (cx - w / 2) / width), min(1.0, (cx + w / 2) / width)
        y1, y2 = max(0.0, (cy - h / 2) / height), min(1.0, (cy + h / 2) / height)
        x1, y1, x2, y2 = (round(v, 4) for v in (x1, y1, x2, y2))
        if x2 <= x1 or y2 <= y1:
            return None
        return (x1, y1, x2, y2)

    def _vouched(self, pending: _Pending) -> bool:
        """Whether someone who was clearly on the side this crossing came from
        vanished there just before, next to where it crossed.

        Where people cross each other or walk close together at the line,
        tracks swap people: the track that crosses may have picked its
        person up near the line while the track that followed that person
        from deep inside lost them there. The person is the same, so the
        lost track's origin vouches for the crossing (once).
        """
        assert self._line is not None
        cfg = self.config
        origin: Side = "inside" if pending.side == "outside" else "outside"
        window = round(self.config.tracker.coast_time * self.fps)
        lost = [self._states.get(t.id) for t in self._tracker.tracks if t.missed > 0]
        for state in [*lost, *self._vanished]:
            if (state is None or state.vouched or state.side != origin
                    or state.depth < cfg.origin_depth or state.last_d is None):
                continue
            near = max(state.last_h, 1.0)
            if (abs(state.last_frame - pending.frame) <= window
                    and abs(state.last_along - pending.along) * self._line.length <= near
                    and abs(state.last_d) <= near):
                state.vouched = True
                return True
        return False

    def _absorb(self, index: int) -> None:
        """Note tracks just lost into the blob of a track on the other side of
        the line, both near it (:mod:`sensors.opposite`); hand a host's note on
        to the track that took its blob over when the host itself is lost;
        forget the notes whose member came back or whose host took too long."""
        cfg = self.config
        tracks = self._tracker.tracks
        back = {t.id for t in tracks if t.missed == 0}
        for state in self._states.values():
            swap = state.swap
            if swap is not None and (swap.member in back
                                     or index - swap.recorded > cfg.swap_time * self.fps):
                state.swap = state.swap_member = None
        lost = [t for t in tracks if t.missed == 1 and self._tracker.is_confirmed(t)]
        if not lost:
            return
        hosts = [t for t in tracks if t.missed == 0 and not t.shared and t.blob is not None
                 and self._tracker.is_confirmed(t)]
        window = round(cfg.view_window * self.fps)
        for track in lost:
            member = self._states.get(track.id)
            if member is None or member.last_d is None:
                continue
            swap = member.swap
            if swap is not None:
                # A host lost in turn (another track took the merged blob over,
                # a door leaf's ghost that was part of it): the blob is the same.
                carrier = self._carrier(member.last_box, hosts, (swap.side,))
                if carrier is not None:
                    if swap.left is None and member.clear_frame is not None:
                        swap.left = (member.clear_frame, member.clear_t)
                    carrier.swap, carrier.swap_member = swap, member.swap_member
                member.swap = member.swap_member = None
                continue
            if (member.side == "unknown" or member.pending is not None
                    or member.depth < cfg.origin_depth
                    or not walked_towards(member.d_hist, member.last_frame, window,
                                          cfg.swap_approach * member.last_h)):
                continue
            host = self._carrier(member.last_box, hosts, ("unknown", member.side))
            if host is not None:
                host.swap = Swap(member=track.id, side=member.side,
                                 member_along=member.last_along,
                                 approach_along=host.prev_along, recorded=index)
                host.swap_member = member

    def _carrier(self, box: tuple[float, float, float, float], hosts: list[Track],
                 sides: tuple[str, ...]) -> _LineState | None:
        """The line state of the first of ``hosts`` whose blob holds most of
        ``box`` (centre x, centre y, w, h), not on one of ``sides`` and with
        no crossing or swap of its own under way."""
        for host in hosts:
            state = self._states.get(host.id)
            blob = host.blob
            if (state is None or blob is None or state.side in sides
                    or state.pending is not None or state.swap is not None):
                continue
            if _holds_third(box, blob.x, blob.y, blob.w, blob.h):
                return state
        return None

    def _take_member(self, track: Track, state: _LineState, frame: Frame, d: float,
                     along: float) -> None:
        """The host's floor point went over to its member's side: the track
        follows the member from here on, with the member's line state, and the
        host's own person is now the one merged into its blob (the same note,
        the other way round: :mod:`sensors.opposite`)."""
        swap, member = state.swap, state.swap_member
        assert swap is not None
        assert member is not None
        state.swap = state.swap_member = None
        member.vouched = True
        # A copy: the member's own track may still be coasting, and come back.
        member = replace(member, counts=list(member.counts), sizes=list(member.sizes))
        member.last_d, member.last_frame, member.last_t = d, frame.index, frame.t
        member.prev_along = member.last_along = along
        member.last_box = state.last_box
        member.d_hist = [(frame.index, d)]
        member.clear_frame, member.clear_t = frame.index, frame.t
        member.pending, member.against = None, 0
        # (No track of its own: the member id is the host's, negated, so that
        # the track's coming back does not cancel the note.)
        member.swap = Swap(member=-track.id, side=other_side(swap.side),
                           member_along=swap.approach_along, approach_along=swap.member_along,
                           recorded=frame.index)
        member.swap_member = state
        self._states[track.id] = member

    def _swapped(self, track: Track, state: _LineState, frame: Frame, along: float,
                 depth: float) -> list[Passage]:
        """The host's floor point (``depth`` margins from the line) is back out of
        the band on its own side: once it has stayed there ``settle_time`` and gone
        ``origin_depth`` deep (not someone standing at the band's edge), report
        both crossings if what went back out is the member
        (:func:`sensors.opposite.lanes_swapped`)."""
        assert self._line is not None
        swap, member = state.swap, state.swap_member
        assert swap is not None
        if swap.back is None:
            swap.back = (frame.index, frame.t)
        if (frame.index - swap.back[0] < self.config.settle_time * self.fps
                or depth < self.config.origin_depth):
            return []
        state.swap = state.swap_member = None
        if member is None or swap.left is None or not lanes_swapped(swap, along):
            return []
        cross_frame = round((swap.left[0] + swap.back[0]) / 2.0)
        cross_t = (swap.left[1] + swap.back[1]) / 2.0
        box = self._box_at(track, cross_frame)
        reach = 0.5 * max(track.w, 1.0) / self._line.length
        window = self.config.duplicate_time * self.fps
        over: Literal["out", "in"] = "out" if swap.side == "inside" else "in"
        back: Literal["out", "in"] = "in" if over == "out" else "out"
        found: list[Passage] = []
        for direction, tid, at in ((over, abs(swap.member), swap.member_along),
                                   (back, track.id, swap.approach_along)):
            if any(kind == direction and abs(f - cross_frame) <= window
                   and abs(a - at) <= max(reach, half)
                   for f, kind, a, _, _, half in self._recent):
                continue
            self._recent.append((cross_frame, direction, at, tid, state.family, reach))
            found.append(Passage(frame=cross_frame, t=round(cross_t, 3), direction=direction,
                                 track=tid, confidence=0.6, box=box))
        member.vouched = True
        member.passages += 1
        state.passages += 1
        return found

    def _recount(self, index: int) -> list[Passage]:
        """Count the people of crossings seen before one person's size was known.

        The first people to use a door may well come out together (a couple
        leaving, two men walking out abreast): their blob is one track and,
        with nothing to compare it with, one passage. Its size at the
        crossing was kept; once the scene has learned one person's size at
        that place, the same test as for any crossing (area and width both
        several people's) tells how many it held, and the others are
        reported then, dated at the crossing.
        """
        assert self._people is not None
        cfg = self.config
        found: list[Passage] = []
        waiting: list[_Recount] = []
        for r in self._recounts:
            if index - r.frame > cfg.recount_horizon * self.fps:
                continue
            people = [self._people.at(y) for _, y, _, _ in r.sizes]
            known = [(p, a, w) for p, (_, _, a, w) in zip(people, r.sizes, strict=True)
                     if p is not None]
            if len(known) < len(people):
                waiting.append(r)
                continue
            ratios = sorted(min(a / max(p.area, 1.0), w / p.w if p.w > 0 else a / max(p.area, 1.0))
                            for p, a, w in known)
            ratio = ratios[len(ratios) // 2]
            count = 1
            if ratio >= 2 - cfg.count_up:
                count = min(cfg.max_count, int(ratio + cfg.count_up))
            for i in range(r.reported, count):
                found.append(Passage(
                    frame=r.frame, t=round(r.t, 3), direction=r.direction,
                    track=-r.track * 10 - i, confidence=round(r.confidence * 0.8, 3),
                    box=r.box))
        self._recounts = waiting
        return found

    def _line_slice(self, frame: Frame, mask: GrayImage, relearned: bool,
                    passages: list[Passage]) -> list[Passage]:
        """Passages of people the tracker missed in a crowd lying through the line,
        counted by the foreground moving over it (:mod:`sensors.lineslice`)."""
        assert self._line is not None
        assert self._people is not None
        assert self._pieces is not None
        line = self._line
        if self._slice is None:
            self._slice = LineSlice(line, self._size, self.fps, self.config.line_slice)
        counter = self._slice
        self._times.append((frame.index, frame.t))
        window = self.config.line_slice.window * self.fps
        learn_all = self.config.line_slice.learn_all
        near = [t for t in self.tracks if self._on_band(t.box)] if passages else []
        for p in passages:
            clean = (p.track > 0 and len(passages) == 1 and len(near) <= 1 and p.box is not None
                     and not counter.reported_near(p.frame, p.direction, window))
            counter.reported(p.frame, p.direction)
            people = 1 + sum(1 for q in passages if q.track == -p.track * 10 - 1
                             or -p.track * 10 - q.track in (2, 3, 4))
            if (clean or (learn_all and p.track > 0)) and p.box is not None:
                width, height = self._size
                x1, y1, x2, y2 = p.box
                corners = [line.along(x * width, y * height) for x in (x1, x2) for y in (y1, y2)]
                counter.clean_report(p.frame, p.direction, (min(corners), max(corners)),
                                     people)
        row = (line.a[1] + line.b[1]) / 2.0
        sizes, pieces = self._people, self._pieces

        def at_line() -> PersonSize | None:
            # One person at the line (asked only when needed: a quiet door costs nothing).
            person = sizes.at(row)
            if person is None and self.config.line_slice.pieces:
                person = pieces.at(row)
            return person

        def area() -> float | None:
            person = at_line()
            return None if person is None else person.area

        found: list[Passage] = []
        crossings = counter.feed(frame.index, mask, relearned, area, self._gray)
        person = at_line() if crossings else None
        if crossings and not passages:
            near = [t for t in self.tracks if self._on_band(t.box)]
        for crossing in crossings:
            lo, hi = counter.lane_span(crossing.lanes)
            host = max(near, key=lambda t: self._along_overlap(t.box, lo, hi), default=None)
            if host is not None and self._along_overlap(host.box, lo, hi) <= 0.0:
                host = None
            box = None if host is None else self._box_at(host, crossing.frame)
            if box is None:
                box = self._slice_box(lo, hi, person.h if person is not None else 0.0)
            found.append(Passage(
                frame=crossing.frame,
                t=round(next((t for f, t in self._times if f == crossing.frame),
                             crossing.frame / self.fps), 3),
                direction=crossing.direction,
                track=-(host.id * 10 + 9) if host is not None else -9,
                confidence=self.config.line_slice_confidence,
                box=box,
            ))
        return found

    def _on_band(self, box: tuple[float, float, float, float]) -> bool:
        """Whether a box (x, y, w, h, working pixels) touches the line counter's strip."""
        assert self._line is not None
        cfg = self.config.line_slice
        x, y, w, h = box
        ds = [self._line.signed_distance(cx, cy) for cx in (x, x + w) for cy in (y, y + h)]
        al = [self._line.along(cx, cy) for cx in (x, x + w) for cy in (y, y + h)]
        reach = cfg.half + cfg.reach
        return (min(ds) <= reach and max(ds) >= -reach and max(al) >= 0.0 and min(al) <= 1.0)

    def _along_overlap(self, box: tuple[float, float, float, float], lo: float, hi: float) -> float:
        assert self._line is not None
        x, y, w, h = box
        al = [self._line.along(cx, cy) for cx in (x, x + w) for cy in (y, y + h)]
        return min(hi, max(al)) - max(lo, min(al))

    def _slice_box(self, lo: float, hi: float, tall: float
                   ) -> tuple[float, float, float, float] | None:
        """The part of the line at ``lo``..``hi`` and a person's height either side, normalized."""
        assert self._line is not None
        line = self._line
        width, height = self._size
        xs, ys = [], []
        for f in (lo, hi):
            px = line.a[0] + f * (line.b[0] - line.a[0])
            py = line.a[1] + f * (line.b[1] - line.a[1])
            for side in (-1.0, 1.0):
                xs.append(px + side * 0.5 * tall * line.normal[0])
                ys.append(py + side * 0.5 * tall * line.normal[1])
        x1, x2 = max(0.0, min(xs) / width), min(1.0, max(xs) / width)
        y1, y2 = max(0.0, min(ys) / height), min(1.0, max(ys) / height)
        if x2 <= x1 or y2 <= y1:
            return None
        return (round(x1, 4), round(y1, 4), round(x2, 4), round(y2, 4))

    def _person_height(self, row: float) -> float | None:
        """How tall a join ending at ``row`` may grow (in units of ``BlobConfig.join_height``):
        one person's height there, or while that is unknown, the tallest pieces'.

        One person's size is learned only from a track that walked alone
        (:mod:`sensors.people`); until then nothing capped joins, so people
        walking one behind the other in a lane (seen from above, or up an
        escalator) were joined into one column, a column is never a lone
        person, and the size stayed unknown for good (one sample in a whole
        clip of a wet crossing). The pieces the mask gives before joining are
        whole people as often as parts of one, and a lane is one piece only
        where its people touch (it is made by joining), so a high quantile of
        the pieces' heights at a row is about one person there, or one and a
        half (escalator_landing: 44-80 px where one person is learned later as
        34-56): enough to stop columns, not to cut a person split at the
        waist. It caps joins only; people are counted by area against one
        person's size alone.
        """
        assert self._people is not None
        assert self._pieces is not None
        person = self._people.at(row)
        if person is None:
            person = self._pieces.at(row)
        return None if person is None else person.h

    def _piece_sample(self, pieces: list[Blob]) -> None:
        """Learn the pieces' size (see :meth:`_person_height`) until one person's is known."""
        assert self._people is not None
        assert self._pieces is not None
        if self._people.known:
            # No longer asked where one person's size is known; where it is not
            # (a band nobody walks alone in), what was learned stands.
            return
        w, h = self._size
        least = self.config.blobs.min_area * w * h
        tall = self.config.sample_height * h
        for piece in pieces:
            if piece.area >= least and piece.h >= tall and not self._at_border(piece):
                # One opinion per frame (``min_people`` different frames).
                self._pieces.add(piece.bottom, piece.area, piece.h, self.frames, piece.w)

    def _at_border(self, blob: Blob) -> bool:
        """Touches the image edge: part of it may be outside the picture."""
        w, h = self._size
        return blob.x <= 1 or blob.y <= 1 or blob.x + blob.w >= w - 1 or blob.bottom >= h - 1

    def _close(self, track: Track) -> list[Passage]:
        state = self._states.pop(track.id, None)
        if state is None or not self._tracker.is_confirmed(track):
            return []
        found: list[Passage] = []
        if state.pending is not None and state.side == state.pending.side:
            found = self._emit(track, state, ending=True)
        if state.last_d is not None and state.passages == 0:
            horizon = state.last_frame - round(self.config.tracker.coast_time * self.fps) * 2
            self._vanished = [s for s in self._vanished if s.last_frame >= horizon]
            self._vanished.append(state)
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
                at_door=state.at_door,
            )
        )
        return found

"""The camera pipeline on the device: capture thread -> analysis thread -> timeline.

Capture and analysis run on two threads of their own (never on the event
loop): the capture thread only reads frames, stamps them with the monotonic
clock and keeps a short ring buffer (the pre-event evidence); the analysis
thread runs the doorway analyzer and the tamper monitor and writes what it
decides into a thread-safe :class:`Timeline`. A full analysis queue drops
frames (counted) rather than letting capture fall behind real time.

The agent asks the pipeline, as an :class:`~agent.classify.EpisodeClassifier`,
for the evidence of an episode window; at the end of an episode it waits
(bounded) for analysis to catch up with the moment the door closed.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from agent.classify import EpisodeEvidence, EpisodeWindow
from agent.doorway import DoorwayActivity
from broker.messages import PassageInfo
from firmware_config.scene import Scene
from ground.errors import HardwareError
from ground.logs import get_logger
from sensors.analyzer import DoorwayAnalyzer, Passage
from sensors.door import DoorTransition
from sensors.frames import Frame, FrameSource
from sensors.tamper import TamperConfig, TamperFinding, TamperMonitor

__all__ = [
    "NO_DOOR_LINE",
    "CameraFailure",
    "CameraPipeline",
    "KeyFrame",
    "Timeline",
    "best_frames",
    "encode_jpeg",
    "evidence_jpeg",
]

log = get_logger(__name__)

# Tamper kinds that make the camera unable to judge an episode.
_BLINDING = frozenset({"covered", "blinded", "frozen", "moved"})
# An episode whose window got fewer than this share of the expected frames is unverified.
_MIN_FRAME_SHARE = 0.5
# At most one "frames dropped" line per this many seconds.
_DROP_LOG_S = 60.0


@dataclass(frozen=True, slots=True)
class CameraFailure:
    """The camera stopped delivering frames (``active``) or came back."""

    active: bool
    detail: str


@dataclass(frozen=True, slots=True)
class KeyFrame:
    """A frame kept as possible evidence, with why it was kept."""

    mono: float
    frame: Frame
    reason: str
    score: float
    # The backend's main-stream JPEG taken when the frame was kept (picamera2), if any.
    jpeg: bytes | None = None


def evidence_jpeg(key: KeyFrame, quality: int = 80) -> bytes:
    """The evidence JPEG of ``key``: its main-stream picture, else the analysis frame."""
    return key.jpeg if key.jpeg is not None else encode_jpeg(key.frame, quality)


def encode_jpeg(frame: Frame, quality: int = 80) -> bytes:
    """JPEG bytes of a frame (colour when the backend gave one)."""
    image = frame.color if frame.color is not None else frame.gray
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise HardwareError("JPEG encoding failed", device="camera")
    return bytes(data.tobytes())


@dataclass
class Timeline:
    """What the analysis thread decided, stamped with the monotonic clock (thread-safe)."""

    fps: float
    passages: collections.deque[tuple[float, Passage]] = field(
        default_factory=lambda: collections.deque(maxlen=1000))
    tracks: collections.deque[tuple[float, float, bool]] = field(
        default_factory=lambda: collections.deque(maxlen=1000))
    problems: list[tuple[float, float | None, str]] = field(default_factory=list)
    frame_monos: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=20000))
    live_tracks: list[tuple[float, float]] = field(default_factory=list)
    # When people who came to the door from the inside (``TrackSummary.at_door``) last
    # stood there: tracks that ended, and live ones.
    door_visits: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000))
    live_at_door: list[float] = field(default_factory=list)
    processed: float = 0.0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def problem_started(self, mono: float, kind: str) -> None:
        """A condition that blinds the camera began at ``mono``."""
        with self.lock:
            self.problems.append((mono, None, kind))
            del self.problems[:-200]

    def problem_ended(self, mono: float, kind: str) -> None:
        """The condition ``kind`` ended at ``mono``."""
        with self.lock:
            for i, (start, end, k) in enumerate(self.problems):
                if k == kind and end is None:
                    self.problems[i] = (start, mono, k)

    def wait_until(self, mono: float, timeout: float) -> bool:
        """Block until frames up to ``mono`` are analysed (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.processed < mono:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
        return True

    def evidence(self, window: EpisodeWindow) -> EpisodeEvidence:
        """The evidence for ``window`` from what has been analysed so far."""
        lo, hi = window.started - window.lead_s, window.ended + window.tail_s
        with self.lock:
            passages = tuple(
                PassageInfo(t=round(max(0.0, mono - window.started), 3), direction=p.direction,
                            track=abs(p.track), confidence=p.confidence, box=p.box)
                for mono, p in self.passages if lo <= mono < hi)
            ended_tracks = [(a, b, h) for a, b, h in self.tracks if a < hi and b >= lo]
            live = [(a, b) for a, b in self.live_tracks if a < hi and b >= lo]
            seen_from = max(window.started, window.observed_from or window.started)
            frames = sum(1 for m in self.frame_monos if seen_from <= m <= window.ended)
            problem = next((k for a, b, k in self.problems
                            if a <= window.ended and (b is None or b >= window.started)), None)
        expected = (window.ended - seen_from) * self.fps
        if problem is None and expected >= self.fps and frames < _MIN_FRAME_SHARE * expected:
            problem = f"camera delivered {frames} of {expected:.0f} frames"
        elif problem is not None:
            problem = f"camera {problem}"
        return EpisodeEvidence(
            passages=passages,
            tracks=len(ended_tracks) + len(live),
            handovers=sum(1 for _, _, h in ended_tracks if h),
            camera_problem=problem,
            frames=frames,
        )


NO_DOOR_LINE = "no door line yet (draw it on the device's page in the dashboard)"


class CameraPipeline:
    """Runs capture and analysis threads over a frame source; see the module docstring."""

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        scene: Scene | None,
        *,
        fps: float,
        ring_s: float = 3.0,
        analysis_wait_s: float = 3.0,
        tamper_checks: bool = True,
        on_tamper: Callable[[TamperFinding | CameraFailure], None] | None = None,
        main_stream: bool = False,
        on_doorway: Callable[[DoorTransition], None] | None = None,
        device_id: str | None = None,
    ) -> None:
        """Prepare (nothing runs before :meth:`start`).

        ``main_stream``: the backend has a higher-resolution stream behind
        ``snapshot_jpeg`` (picamera2's main stream); evidence frames kept while
        an episode is open are then also captured from it.
        ``on_doorway``: called (on the analysis thread) with "door opened" /
        "door closed" transitions from movement in the doorway, for devices
        without a reed switch (:mod:`agent.doorway`).
        ``device_id``: named in every log line the pipeline writes, so an operator
        reading a fleet's logs knows which door's camera failed or fell behind.
        """
        self._log_device = {"device_id": device_id} if device_id is not None else {}
        self._main_stream = main_stream
        self.on_doorway = on_doorway
        # Told of every passage as soon as the analyzer returns it (analysis thread), with
        # its crossing time on the monotonic clock: the agent's early exit.
        self.on_passage: Callable[[float, Passage], None] | None = None
        self._doorway = DoorwayActivity()
        self._open_source = open_source
        self._scene = scene
        self.fps = fps
        self._analysis_wait_s = analysis_wait_s
        self._tamper_checks = tamper_checks
        self.on_tamper = on_tamper
        self.timeline = Timeline(fps)
        self._ring: collections.deque[tuple[float, Frame]] = collections.deque(
            maxlen=max(1, round(ring_s * fps)))
        self._queue: queue.Queue[tuple[float, Frame] | None] = queue.Queue(
            maxsize=max(4, round(2 * fps)))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._episode: list[KeyFrame] | None = None
        self._last_sample = 0.0
        self.keyframes: collections.deque[KeyFrame] = collections.deque(maxlen=64)
        self.source: FrameSource | None = None
        self.dropped = 0
        self.captured = 0
        # Dropped frames already logged, and when ("frames dropped" lines).
        self._drops_logged = 0
        self._drops_logged_at: float | None = None
        self._capture_times: collections.deque[float] = collections.deque(maxlen=200)
        self._new_scene: Scene | None = None
        self.failed: str | None = None
        self.last_progress = time.monotonic()

    # lifecycle

    def start(self) -> None:
        """Start the capture and analysis threads."""
        for name, target in (("camera-capture", self._capture), ("camera-analysis", self._analyse)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop both threads and close the source."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            if self.source is not None:
                self.source.close()

    def set_scene(self, scene: Scene) -> None:
        """Use a new doorway scene from the next frame on (remote config update)."""
        self._new_scene = scene

    @property
    def measured_fps(self) -> float:
        """Frames per second captured over the last few seconds."""
        times = list(self._capture_times)
        if len(times) < 2 or times[-1] - times[0] <= 0:
            return 0.0
        if time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    # capture thread

    def _capture(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                source = self._open_source()
            except Exception as exc:
                self._fail(f"cannot open camera: {exc}")
                self._stop.wait(backoff)
                backoff = min(30.0, backoff * 2)
                continue
            with self._lock:
                self.source = source
            backoff = 1.0
            self._read_all(source)
            source.close()
        self._queue.put(None)

    def _read_all(self, source: FrameSource) -> None:
        while not self._stop.is_set():
            try:
                frame = source.read()
            except Exception as exc:
                self._fail(f"camera read failed: {exc}")
                return
            if frame is None:
                self._fail("camera stream ended")
                self._stop.wait(1.0)
                return
            mono = time.monotonic()
            self._recovered()
            self.captured += 1
            self._capture_times.append(mono)
            self._ring.append((mono, frame))
            try:
                self._queue.put_nowait((mono, frame))
            except queue.Full:
                self.dropped += 1
                self._log_drops(mono)

    def _log_drops(self, mono: float) -> None:
        """Say that analysis fell behind (at once, then at most every ``_DROP_LOG_S``):
        the analyzer's decisions differ on a thinned stream, and nothing else shows it."""
        if self._drops_logged_at is not None and mono - self._drops_logged_at < _DROP_LOG_S:
            return
        log.warning("camera frames dropped: analysis behind", extra={
            **self._log_device, "dropped": self.dropped - self._drops_logged,
            "dropped_total": self.dropped, "captured_total": self.captured})
        self._drops_logged, self._drops_logged_at = self.dropped, mono

    def _fail(self, detail: str) -> None:
        if self.failed is None:
            self.failed = detail
            log.error("camera failure", extra={**self._log_device, "detail": detail})
            self.timeline.problem_started(time.monotonic(), "failed")
            if self.on_tamper is not None:
                self.on_tamper(CameraFailure(active=True, detail=detail))

    def _recovered(self) -> None:
        if self.failed is not None:
            self.failed = None
            self.timeline.problem_ended(time.monotonic(), "failed")
            if self.on_tamper is not None:
                self.on_tamper(CameraFailure(active=False, detail="frames again"))

    # analysis thread

    def _analyse(self) -> None:
        analyzer: DoorwayAnalyzer | None = None
        tamper = TamperMonitor(self.fps)
        hold = TamperConfig().hold
        while True:
            item = self._queue.get()
            if item is None:
                return
            mono, frame = item
            if self._new_scene is not None:
                self._scene, self._new_scene, analyzer = self._new_scene, None, None
            if analyzer is None and self._scene is not None:
                analyzer = DoorwayAnalyzer(self._scene, self.fps)
            if analyzer is not None:
                self._feed(analyzer, mono, frame)
            if self._tamper_checks:
                for finding in tamper.check(frame):
                    self._tamper_found(finding, mono - (frame.t - finding.t), hold)
            self._sample(mono, frame)
            with self.timeline.lock:
                self.timeline.frame_monos.append(mono)
                self.timeline.processed = mono
                self.timeline.lock.notify_all()
            self.last_progress = time.monotonic()

    def _feed(self, analyzer: DoorwayAnalyzer, mono: float, frame: Frame) -> None:
        passages = analyzer.feed(frame)
        if self._main_stream and passages:
            passages = [_main_stream_box(analyzer, p) for p in passages]
        if self.on_doorway is not None:
            change = self._doorway.update(analyzer, frame.size, frame.t)
            if change is not None:
                # Dated back to when the movement began / the doorway went still.
                lag = self._doorway.start_s if change else self._doorway.stop_s
                self.on_doorway(DoorTransition(is_open=change, at=mono - lag))
        done = len(analyzer.summaries)
        with self.timeline.lock:
            for p in passages:
                at = mono - (frame.t - p.t)
                self.timeline.passages.append((at, p))
            for s in analyzer.summaries[:done]:
                first = mono - (frame.index - s.first_frame) / self.fps
                last = mono - (frame.index - s.last_frame) / self.fps
                self.timeline.tracks.append((first, last, s.handover))
                if s.at_door is not None:
                    self.timeline.door_visits.append(mono - (frame.index - s.at_door) / self.fps)
            self.timeline.live_tracks = [
                (mono - (frame.index - t.first_frame) / self.fps, mono) for t in analyzer.tracks]
            self.timeline.live_at_door = [
                mono - (frame.index - f) / self.fps for f in analyzer.at_door.values()]
        analyzer.summaries.clear()
        for p in passages:
            self._keep(p, mono, frame)
            if self.on_passage is not None:
                self.on_passage(mono - (frame.t - p.t), p)

    def _keep(self, passage: Passage, mono: float, frame: Frame) -> None:
        """Keep the frame nearest the passage (dated back) as evidence."""
        at = mono - (frame.t - passage.t)
        best = min(list(self._ring), key=lambda mf: abs(mf[0] - at), default=(mono, frame))
        key = self.key_frame(best[0], best[1], f"passage {passage.direction}",
                             passage.confidence + 1)
        self.keyframes.append(key)
        with self._lock:
            if self._episode is not None:
                self._episode.append(key)

    def _tamper_found(self, finding: TamperFinding, mono: float, hold: float) -> None:
        if finding.kind in _BLINDING:
            if finding.active:
                self.timeline.problem_started(mono - hold, finding.kind)
            else:
                self.timeline.problem_ended(mono, finding.kind)
        if self.on_tamper is not None:
            self.on_tamper(finding)

    def _sample(self, mono: float, frame: Frame) -> None:
        """One frame a second while an episode is open (evidence for unverified ones)."""
        with self._lock:
            if self._episode is None or mono - self._last_sample < 1.0:
                return
            self._last_sample = mono
            source = self.source
        key = self.key_frame(mono, frame, "during", _visibility(frame), source)
        with self._lock:
            if self._episode is None:
                return
            self._episode.append(key)
            del self._episode[:-40]

    def key_frame(self, mono: float, frame: Frame, reason: str, score: float,
                  source: FrameSource | None = None) -> KeyFrame:
        """A kept frame, with the main stream's JPEG taken now when the backend has one.

        A failing main-stream capture is logged and the analysis frame serves
        as evidence instead (never lose the evidence for a better picture).
        """
        jpeg: bytes | None = None
        if self._main_stream:
            if source is None:
                with self._lock:
                    source = self.source
            if source is not None:
                try:
                    jpeg = source.snapshot_jpeg()
                except Exception as exc:
                    log.warning("main-stream evidence failed; using the analysis frame",
                                extra={**self._log_device, "reason": str(exc)})
        return KeyFrame(mono, frame, reason, score, jpeg)

    # episodes and evidence

    def begin_episode(self) -> None:
        """An episode started: keep the pre-event ring and sample frames until it ends."""
        with self._lock:
            # The capture thread appends to the ring without this lock: copy it in one
            # C-level step (atomic under the GIL) before iterating in Python.
            ring = list(self._ring)
            self._episode = [KeyFrame(m, f, "before", _visibility(f)) for m, f in ring][::5]

    def end_episode(self) -> list[KeyFrame]:
        """The frames kept for the episode that just ended."""
        with self._lock:
            frames, self._episode = self._episode or [], None
        return frames

    def evidence(self, window: EpisodeWindow, *, final: bool) -> EpisodeEvidence:
        """Evidence for ``window`` (the :class:`EpisodeClassifier` protocol)."""
        if self._scene is None and self._new_scene is None:
            # No door line drawn yet: nobody can tell out from in, so the opening is
            # reported as unverified (a possible breach), never as "nobody passed".
            return EpisodeEvidence(frames=self.timeline.evidence(window).frames,
                                   camera_problem=NO_DOOR_LINE)
        if final and not self.timeline.wait_until(window.ended, self._analysis_wait_s):
            found = self.timeline.evidence(window)
            reason = self.failed or "analysis did not keep up with the camera"
            if found.camera_problem is None:
                return EpisodeEvidence(passages=found.passages, tracks=found.tracks,
                                       handovers=found.handovers, camera_problem=reason,
                                       frames=found.frames)
            return found
        return self.timeline.evidence(window)

    def latest_jpeg(self, quality: int = 80) -> bytes:
        """JPEG of the most recent frame (snapshot command)."""
        with self._lock:
            source = self.source
        if source is not None:
            try:
                return source.snapshot_jpeg()
            except Exception as exc:
                log.warning("snapshot from the source failed",
                            extra={**self._log_device, "reason": str(exc)})
        if not self._ring:
            raise HardwareError("no camera frame available", device="camera")
        return encode_jpeg(self._ring[-1][1], quality)


def _main_stream_box(analyzer: DoorwayAnalyzer, passage: Passage) -> Passage:
    """The passage with its box widened to where the person is now.

    ``Passage.box`` is normalized to the analysed (lores) picture, and the
    main stream shows the same field of view at a higher resolution, so the
    same normalized box holds there. But the main-stream evidence JPEG is
    captured when the passage is decided (:meth:`CameraPipeline.key_frame`),
    a settling time after the crossing: the box is widened to also cover the
    track's latest box, so the person is inside it in that picture too.
    """
    # Extra people of one blob carry -(id * 10 + i) (sensors.analyzer).
    track = passage.track if passage.track > 0 else -passage.track // 10
    now = analyzer.live_box(track)
    if passage.box is None or now is None:
        return passage
    a, b = passage.box, now
    box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return passage.model_copy(update={"box": box})


def _visibility(frame: Frame) -> float:
    """How much there is to see: the gray standard deviation (a covered lens has ~0)."""
    return float(np.std(frame.gray[::4, ::4]))


def best_frames(kept: list[KeyFrame], count: int) -> list[KeyFrame]:
    """Passage frames first (most confident), then the most visible others, in time order."""
    ranked = sorted(kept, key=lambda k: (k.reason.startswith("passage"), k.score), reverse=True)
    return sorted(ranked[:count], key=lambda k: k.mono)

"""Evidence pictures come from the backend's main stream when it has one (unit test).

A fake source stands in for picamera2: its ``snapshot_jpeg`` is the "main
stream". Without a main stream, or when capturing from it fails, the analysis
frame is encoded instead, so an event never loses its evidence.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

import cv2
import numpy as np
import pytest

from agent.camera import CameraPipeline, evidence_jpeg
from agent.wiring import build_camera
from sensors.analyzer import DoorwayAnalyzer
from sensors.frames import Frame, FrameSource
from sensors.source_synthetic import SCENARIOS, SyntheticSource
from tests.agent.helpers import device_config

MAIN_JPEG = b"\xff\xd8main-stream-1280x720\xff\xd9"


class FakeSource:
    """A FrameSource whose ``snapshot_jpeg`` answers (or fails) as told."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.snapshots = 0

    @property
    def fps(self) -> float:
        """Nominal rate."""
        return 10.0

    @property
    def size(self) -> tuple[int, int]:
        """Analysis size."""
        return (32, 24)

    def read(self) -> Frame | None:
        """Never used here."""
        return None

    def snapshot_jpeg(self) -> bytes:
        """The main stream's picture (or a failure)."""
        self.snapshots += 1
        if self.fail:
            raise RuntimeError("main stream gone")
        return MAIN_JPEG

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        """Itself."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close."""


def _frame() -> Frame:
    gray = np.full((24, 32), 128, dtype=np.uint8)
    gray[8:16, 10:20] = 30
    return Frame(index=5, t=0.5, gray=gray)


def _pipeline(source: FrameSource, *, main_stream: bool) -> CameraPipeline:
    pipeline = CameraPipeline(lambda: source, None, fps=10.0, main_stream=main_stream)
    pipeline.source = source  # as the capture thread sets it once the camera is open
    return pipeline


def _decoded_size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return int(image.shape[1]), int(image.shape[0])


def test_main_stream_picture_is_the_evidence_when_the_backend_has_one() -> None:
    source = FakeSource()
    key = _pipeline(source, main_stream=True).key_frame(1.0, _frame(), "passage out", 1.9)
    assert source.snapshots == 1
    assert evidence_jpeg(key) == MAIN_JPEG


def test_analysis_frame_is_the_evidence_without_a_main_stream() -> None:
    source = FakeSource()
    key = _pipeline(source, main_stream=False).key_frame(1.0, _frame(), "passage out", 1.9)
    assert source.snapshots == 0  # no capture cost on backends without a main stream
    jpeg = evidence_jpeg(key)
    assert jpeg[:2] == b"\xff\xd8"
    assert _decoded_size(jpeg) == (32, 24)


def test_a_failing_main_stream_falls_back_to_the_analysis_frame() -> None:
    source = FakeSource(fail=True)
    key = _pipeline(source, main_stream=True).key_frame(1.0, _frame(), "during", 12.0)
    assert source.snapshots == 1
    assert key.jpeg is None
    assert _decoded_size(evidence_jpeg(key)) == (32, 24)


def test_a_main_stream_passage_box_also_covers_where_the_person_is_when_it_is_decided() -> None:
    """The box is normalized to the analysed (lores) picture, which shows the main
    stream's field of view; but the main-stream picture is taken when the passage is
    decided, after the crossing, so the box is widened to where the person is then."""
    boxes: dict[bool, list[tuple[float, float, float, float] | None]] = {}
    for main_stream in (False, True):
        source = SyntheticSource(SCENARIOS["exit"], seed=1)
        pipeline = _pipeline(source, main_stream=main_stream)
        analyzer = DoorwayAnalyzer(source.scene, source.fps)
        while (frame := source.read()) is not None:
            pipeline._feed(analyzer, 100.0 + frame.t, frame)
        boxes[main_stream] = [p.box for _, p in pipeline.timeline.passages]
    (crossing,), (widened,) = boxes[False], boxes[True]
    assert crossing is not None
    assert widened is not None
    assert widened[0] <= crossing[0]
    assert widened[1] <= crossing[1]
    assert widened[2] >= crossing[2]
    assert widened[3] >= crossing[3]
    assert widened[3] > crossing[3] + 0.02  # the person walked on, down the picture


class _Frames:
    """A source of ``n`` frames that stops the pipeline after the last one (nothing
    analyses them: the analysis queue fills and the rest are dropped)."""

    def __init__(self, pipeline: CameraPipeline, n: int) -> None:
        self.pipeline, self.n, self.i = pipeline, n, 0

    def read(self) -> Frame | None:
        self.i += 1
        if self.i == self.n:
            self.pipeline._stop.set()
        return Frame(index=self.i, t=self.i / 10.0, gray=np.zeros((24, 32), np.uint8))


def test_frames_dropped_because_analysis_is_behind_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """Said at once, then not again for a while (one line, not one per frame)."""
    pipeline = CameraPipeline(lambda: FakeSource(), None, fps=10.0, device_id="door-7")
    caplog.set_level(logging.WARNING, logger="agent.camera")
    pipeline._read_all(_Frames(pipeline, 100))  # type: ignore[arg-type]
    assert pipeline.dropped == 100 - 20  # the queue holds 2 s of frames
    [line] = [r for r in caplog.records if "frames dropped" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.__dict__["dropped"] == 1
    # A fleet's logs are read by device: the line says which door's camera fell behind.
    assert line.__dict__["device_id"] == "door-7"


def test_the_wired_camera_names_its_device_in_its_logs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """build_camera hands the configured device id to the pipeline's log lines."""
    config = device_config(tmp_path, None, "door-logs", "x", camera={"backend": "synthetic"})
    pipeline = build_camera(config)
    assert pipeline is not None
    caplog.set_level(logging.WARNING, logger="agent.camera")
    pipeline._read_all(_Frames(pipeline, 100))  # type: ignore[arg-type]
    [line] = [r for r in caplog.records if "frames dropped" in r.getMessage()]
    assert line.__dict__["device_id"] == "door-logs"

"""One contract, every frame-source backend that can run on this machine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from ground.errors import HardwareError
from sensors.frames import FrameSource
from sensors.source_synthetic import SCENARIOS, SyntheticSource
from sensors.sources import open_source


def _write_clip(path: Path, frames: int = 12) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((64, 96, 3), 40 + 10 * i, np.uint8)
        writer.write(image)
    writer.release()


def _synthetic(_: Path) -> FrameSource:
    return open_source("synthetic", SCENARIOS["exit"], seed=3, size=(160, 120))


def _opencv_file(tmp: Path) -> FrameSource:
    clip = tmp / "clip.avi"
    _write_clip(clip)
    return open_source("opencv", clip)


BACKENDS: dict[str, Callable[[Path], FrameSource]] = {
    "synthetic": _synthetic,
    "opencv-file": _opencv_file,
}


@pytest.fixture(params=sorted(BACKENDS))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FrameSource]:
    src = BACKENDS[request.param](tmp_path)
    yield src
    src.close()


def test_is_a_frame_source(source: FrameSource) -> None:
    assert isinstance(source, FrameSource)
    assert source.fps > 0


def test_frames_follow_the_contract(source: FrameSource) -> None:
    width, height = source.size
    previous_index, previous_t = -1, -1.0
    count = 0
    while (frame := source.read()) is not None and count < 40:
        assert frame.index > previous_index
        assert frame.t >= previous_t
        assert frame.gray.dtype == np.uint8
        assert frame.gray.shape == (height, width)
        assert frame.gray.flags["C_CONTIGUOUS"]
        previous_index, previous_t = frame.index, frame.t
        count += 1
    assert count > 5


def test_snapshot_is_a_jpeg_after_a_frame(source: FrameSource) -> None:
    with pytest.raises(HardwareError):
        source.snapshot_jpeg()
    assert source.read() is not None
    assert source.snapshot_jpeg()[:2] == b"\xff\xd8"


def test_close_is_idempotent_and_ends_reading(source: FrameSource) -> None:
    with source:
        assert source.read() is not None
    source.close()
    assert source.read() is None


def test_file_source_ends_with_none(tmp_path: Path) -> None:
    src = _opencv_file(tmp_path)
    frames = 0
    while src.read() is not None:
        frames += 1
    assert frames == 12
    assert src.read() is None


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(HardwareError, match="unknown camera backend 'usb'"):
        open_source("usb", 0)


def test_missing_library_is_a_hardware_error_not_a_fallback() -> None:
    try:
        import picamera2  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(HardwareError, match="picamera2"):
            open_source("picamera2")
    else:  # pragma: no cover - only on a Pi
        pytest.skip("picamera2 is installed here")


def test_missing_video_file_is_a_hardware_error(tmp_path: Path) -> None:
    with pytest.raises(HardwareError, match="does not exist"):
        open_source("opencv", tmp_path / "missing.mp4")


def test_synthetic_is_deterministic_from_its_seed() -> None:
    def frames(seed: int) -> list[np.ndarray]:
        src = SyntheticSource(SCENARIOS["exit"], seed=seed, size=(160, 120))
        return [f.gray for _ in range(60) if (f := src.read()) is not None]

    a, b, c = frames(5), frames(5), frames(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_synthetic_schedule_adds_a_walk_while_running() -> None:
    from sensors.source_synthetic import Scenario, Walk

    src = SyntheticSource(Scenario((), duration=None), size=(160, 120))
    for _ in range(10):
        src.read()
    src.schedule(Walk("exit", 0.0), delay=1.0)
    [passage] = src.expected_passages()
    assert passage.direction == "out"
    assert passage.t == pytest.approx(10 / 25 + 1.0 + 0.45 * 4.0)


class _Clock:
    """Stands in for the ``time`` module: the source's pacing on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + 4000.0

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_synthetic_walk_happens_when_the_paced_clock_says_not_the_wall_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A realtime source whose reader was starved of CPU for 2 s is 2 s behind; a walk
    scheduled 0.8 s after its current frame shows up 0.8 s after that frame's due time
    once the reader catches up, which is 1.2 s *before* the wall clock's now + 0.8 s."""
    import sensors.source_synthetic as synthetic
    from sensors.source_synthetic import Scenario, Walk

    clock = _Clock()
    monkeypatch.setattr(synthetic, "time", clock)
    src = SyntheticSource(Scenario((), duration=None), size=(160, 120), realtime=True)
    assert src.wall_time(0.0) is None  # not paced yet
    src.read()
    clock.now += 2.0
    start = src.schedule(Walk("exit", 0.0), delay=0.8)
    assert start == pytest.approx(1 / 25 + 0.8)
    [passage] = src.expected_passages()
    due = src.wall_time(passage.t)
    assert due == pytest.approx(5000.0 + 1 / 25 + 0.8 + 0.45 * 4.0)
    assert due < clock.time() + 0.8 + 0.45 * 4.0 - 1.9
    while (frame := src.read()) is not None and frame.index < passage.frame:
        pass
    assert clock.time() == pytest.approx(due, abs=1 / 25)  # shown when due, caught up

"""The picamera2 backend against a faithful fake of picamera2 (tests/sensors/fake_picamera2.py).

The fake keeps picamera2's rules (buffers held until released, YUV420 rows
padded to the stride, configure refused while started, a stalled sensor that
just stops delivering, ...), so these tests fail when the backend breaks one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest

from agent.camera import CameraFailure, CameraPipeline
from ground.errors import HardwareError
from sensors.frames import FrameSource
from sensors.sources import open_source
from tests.sensors import fake_picamera2
from tests.sensors.fake_picamera2 import FakeCameraSystem, FakeSensor, default_scene
from tests.waiting import poll_until

LORES = (328, 246)  # 328 bytes is not a multiple of 64: the YUV rows carry padding
MAIN = (656, 492)


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCameraSystem]:
    cameras = FakeCameraSystem()
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2.make_module(cameras))
    yield cameras
    for cam in cameras.opened:
        cam.close()


def _open(**kwargs: object) -> FrameSource:
    options: dict[str, object] = {"lores_size": LORES, "main_size": MAIN, "fps": 50.0}
    options.update(kwargs)
    return open_source("picamera2", **options)


def test_frames_are_the_lores_y_plane_without_padding(system: FakeCameraSystem) -> None:
    with _open() as source:
        assert isinstance(source, FrameSource)
        assert source.size == LORES
        assert source.fps == 50.0
        frames = [source.read() for _ in range(8)]
    previous = -1.0
    for frame in frames:
        assert frame is not None
        assert frame.gray.shape == (LORES[1], LORES[0])
        assert frame.gray.dtype == np.uint8
        assert frame.gray.flags.c_contiguous
        # No stride padding (0xA5) and no chroma rows (128) leaked into the image.
        assert not (frame.gray == 0xA5).any()
        assert frame.t > previous
        previous = frame.t
    assert [f.index for f in frames if f is not None] == list(range(8))


def test_frame_times_come_from_the_sensor_timestamp(system: FakeCameraSystem) -> None:
    seen: list[float] = []

    def scene(t: float, size: tuple[int, int]) -> np.ndarray:
        seen.append(t)
        return default_scene(t, size)

    system.sensors[0].scene = scene
    with _open() as source:
        first = source.read()
        time.sleep(0.2)  # frames completing meanwhile are recycled by the camera
        second = source.read()
    assert first is not None
    assert second is not None
    assert first.t == 0.0
    # The gap is the sensor's (~10 frames at 50 fps), not the frame count (1 frame).
    assert second.t == pytest.approx(seen[-1] - seen[0], abs=1e-6)
    assert second.t >= 0.15
    # And the picture is the one exposed at that time: the block has moved.
    expected = cv2.cvtColor(default_scene(seen[-1], LORES), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(second.gray, expected)


def test_every_request_goes_back_to_the_camera(system: FakeCameraSystem) -> None:
    # Six buffers: a backend that kept requests would stall within six frames.
    with _open() as source:
        for _ in range(30):
            assert source.read() is not None
        assert system.opened[-1].held_requests == 0


def test_snapshot_is_a_jpeg_of_the_main_stream(system: FakeCameraSystem) -> None:
    with _open() as source:
        source.read()
        jpeg = source.snapshot_jpeg()
        assert system.opened[-1].held_requests == 0
    assert jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (MAIN[1], MAIN[0], 3)


def test_close_frees_the_camera_for_the_next_open(system: FakeCameraSystem) -> None:
    source = _open()
    source.read()
    source.close()
    source.close()  # idempotent
    assert source.read() is None
    cam = system.opened[-1]
    assert not cam.started
    assert not cam.is_open
    with _open() as again:  # would be "busy" had close not released it
        assert again.read() is not None


def test_no_camera_is_a_clear_hardware_error(system: FakeCameraSystem) -> None:
    system.sensors.clear()
    with pytest.raises(HardwareError, match=r"camera0: no such camera.*config\.txt"):
        _open()


def test_camera_held_elsewhere_is_a_hardware_error(system: FakeCameraSystem) -> None:
    system.sensors[0].held_by = object()
    with pytest.raises(HardwareError, match="camera0: cannot start camera"):
        _open()


def test_bad_configuration_is_refused_and_the_camera_released(system: FakeCameraSystem) -> None:
    # A lores stream larger than main is refused by picamera2's configuration check.
    with pytest.raises(HardwareError, match="lores stream dimensions may not exceed main"):
        _open(lores_size=(800, 600), main_size=(640, 480))
    assert system.sensors[0].held_by is None
    with _open() as source:  # the next attempt (the agent retries) can open it
        assert source.read() is not None


def test_second_camera_by_number(system: FakeCameraSystem) -> None:
    system.sensors.append(FakeSensor(camera_id="/base/usb@1", model="uvc"))
    with _open(camera_num=1) as source:
        assert source.read() is not None
    with pytest.raises(HardwareError, match="camera2: no such camera"):
        _open(camera_num=2)


def test_a_stalled_camera_raises_instead_of_hanging(system: FakeCameraSystem) -> None:
    with _open(frame_timeout=0.3) as source:
        assert source.read() is not None
        system.stalled.set()  # ribbon out: frames stop, no error from libcamera
        started = time.monotonic()
        with pytest.raises(HardwareError, match=r"no frame for 0\.3 s"):
            source.read()
        assert time.monotonic() - started < 5
        with pytest.raises(HardwareError, match="no frame"):
            source.snapshot_jpeg()
        system.stalled.clear()  # reseated: the same source delivers again
        assert source.read() is not None


def test_the_agent_camera_reports_a_stall_and_recovers(system: FakeCameraSystem) -> None:
    # The capture thread of the agent treats the stall as a camera failure
    # (tamper event) and reopens the camera once it delivers again.
    from tests.sensors.fake_picamera2 import Picamera2

    events: list[bool] = []
    got_failure = threading.Event()
    got_recovery = threading.Event()

    def on_tamper(event: object) -> None:
        assert isinstance(event, CameraFailure)
        events.append(event.active)
        (got_failure if event.active else got_recovery).set()

    pipeline = _camera_pipeline(on_tamper)
    pipeline.start()
    try:
        assert poll_until(lambda: pipeline.captured >= 3, 10, every=0.02)
        system.stalled.set()
        assert got_failure.wait(10), "a stalled camera was never reported"
        system.stalled.clear()
        assert got_recovery.wait(15), "the camera never came back"
    finally:
        pipeline.stop()
    assert events[:2] == [True, False]
    assert all(not isinstance(c, Picamera2) or not c.is_open for c in system.opened[:-1])


def _camera_pipeline(on_tamper: Callable[[object], None]) -> CameraPipeline:
    return CameraPipeline(lambda: _open(frame_timeout=0.3), None, fps=50.0,
                          tamper_checks=False, on_tamper=on_tamper, main_stream=True)

"""Raspberry Pi camera backend (picamera2 / libcamera).

Two streams from one configuration: the **lores** stream in YUV420, whose
first ``height`` rows are the Y plane, i.e. the grayscale frame with no
conversion at all (the ISP has already scaled it down); and the **main**
stream, used only when evidence is asked for (``snapshot_jpeg``). picamera2
is imported when this backend is constructed, never at module import, so the
rest of doorwatch runs on machines without libcamera.

Frame times come from the request's ``SensorTimestamp`` (nanoseconds), the
moment the sensor exposed the frame, not when Python got it.

Every capture waits at most ``frame_timeout`` seconds. picamera2's own default
is to wait for ever, and a camera whose ribbon came loose simply stops
delivering frames without an error: without the timeout the capture thread
would hang silently and the agent would never report the camera as failed.
"""

from __future__ import annotations

import io
from types import TracebackType
from typing import Any, NoReturn, Self

import numpy as np

from ground.errors import HardwareError
from sensors.frames import Frame

__all__ = ["Picamera2Source"]


class Picamera2Source:
    """Frames from a Pi camera; see :class:`sensors.frames.FrameSource`."""

    def __init__(
        self,
        *,
        lores_size: tuple[int, int] = (320, 240),
        main_size: tuple[int, int] = (1280, 720),
        fps: float = 30.0,
        camera_num: int = 0,
        frame_timeout: float = 2.0,
    ) -> None:
        """Configure and start the camera; HardwareError if picamera2 or the camera is missing."""
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise HardwareError(
                "picamera2 is not installed (apt install python3-picamera2)", device="picamera2"
            ) from exc
        try:
            self._cam: Any = Picamera2(camera_num)
            try:
                config = self._cam.create_video_configuration(
                    main={"size": main_size, "format": "RGB888"},
                    lores={"size": lores_size, "format": "YUV420"},
                    controls={"FrameRate": fps},
                )
                self._cam.configure(config)
                self._cam.start()
            except Exception:
                # Release the camera, or every retry would find it busy until the process exits.
                self._cam.close()
                raise
        except IndexError as exc:  # picamera2 indexes its list of detected cameras
            raise HardwareError(
                "no such camera: check the ribbon and camera_auto_detect=1 in config.txt",
                device=f"camera{camera_num}",
            ) from exc
        except Exception as exc:  # libcamera raises plain RuntimeError
            raise HardwareError(
                f"cannot start camera: {exc}", device=f"camera{camera_num}"
            ) from exc
        self._fps = fps
        self._size = lores_size
        self._device = f"camera{camera_num}"
        self._timeout = frame_timeout
        self._index = 0
        self._t0: int | None = None
        self._closed = False

    @property
    def fps(self) -> float:
        """Configured frame rate."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the lores stream."""
        return self._size

    def read(self) -> Frame | None:
        """Block until the next frame and return its Y plane."""
        if self._closed:
            return None
        try:
            request = self._cam.capture_request(wait=self._timeout)
        except TimeoutError as exc:
            self._stalled(exc)
        try:
            yuv = request.make_array("lores")
            stamp = int(request.get_metadata().get("SensorTimestamp", 0))
        finally:
            request.release()
        width, height = self._size
        # YUV420 arrays are (height * 3 / 2, stride); rows beyond `height` are U and V,
        # columns beyond `width` are padding.
        gray = np.ascontiguousarray(yuv[:height, :width])
        if self._t0 is None:
            self._t0 = stamp
        t = (stamp - self._t0) / 1e9 if stamp else self._index / self._fps
        frame = Frame(index=self._index, t=t, gray=gray)
        self._index += 1
        return frame

    def snapshot_jpeg(self) -> bytes:
        """Capture the main stream as a JPEG."""
        buffer = io.BytesIO()
        try:
            self._cam.capture_file(buffer, name="main", format="jpeg", wait=self._timeout)
        except TimeoutError as exc:
            self._stalled(exc)
        return buffer.getvalue()

    def _stalled(self, exc: TimeoutError) -> NoReturn:
        # The timed-out job stays queued in picamera2 and would swallow the next frame.
        self._cam.cancel_all_and_flush()
        raise HardwareError(
            f"no frame for {self._timeout:g} s (camera cable or sensor?)", device=self._device
        ) from exc

    def close(self) -> None:
        """Stop and close the camera."""
        if not self._closed:
            self._closed = True
            try:
                self._cam.stop()
            finally:
                # Always free the camera, or the next Picamera2 cannot acquire it.
                self._cam.close()

    def __enter__(self) -> Self:
        """Return the source."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the camera."""
        self.close()

"""OpenCV ``VideoCapture`` backend: a USB camera index, an RTSP/HTTP URL or a video file.

Files are decoded frame by frame and ``t`` is ``index / fps`` (container
timestamps of the MPEG-1 test clips are unreliable; labels count decoded
frames). Live cameras use the wall clock since the first frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np

from ground.errors import HardwareError
from sensors.frames import ColorImage, Frame

__all__ = ["OpenCVSource"]

# A camera that reports no rate is assumed to deliver this many frames per second.
_DEFAULT_FPS = 25.0


def _parse_uri(uri: str | int | Path) -> tuple[str | int, bool]:
    """Return the argument for VideoCapture and whether it is a live stream."""
    if isinstance(uri, int):
        return uri, True
    text = str(uri)
    if text.isdigit():
        return int(text), True
    if "://" in text:
        return text, True
    if not Path(text).exists():
        raise HardwareError("video file does not exist", device=text)
    return text, False


class OpenCVSource:
    """Frames from ``cv2.VideoCapture``; see :class:`sensors.frames.FrameSource`."""

    def __init__(self, uri: str | int | Path, *, keep_color: bool = True) -> None:
        """Open ``uri`` (camera index, URL or file path); raise HardwareError if it fails."""
        target, self._live = _parse_uri(uri)
        self._name = str(uri)
        self._cap: Any = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            raise HardwareError("OpenCV cannot open this camera, stream or file", device=self._name)
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if 1.0 <= fps <= 1000.0 else _DEFAULT_FPS
        self._size = (
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self._keep_color = keep_color
        self._index = 0
        self._start: float | None = None
        self._last_color: ColorImage | None = None
        self._closed = False

    @property
    def fps(self) -> float:
        """Frames per second reported by the container or camera."""
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return self._size

    def read(self) -> Frame | None:
        """Decode the next frame; ``None`` at the end of a file or a dead stream."""
        if self._closed:
            return None
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            gray = np.ascontiguousarray(image)
            color = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if self._keep_color else None
        else:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            color = image if self._keep_color else None
        self._size = (gray.shape[1], gray.shape[0])
        now = time.monotonic()
        if self._start is None:
            self._start = now
        t = now - self._start if self._live else self._index / self._fps
        frame = Frame(index=self._index, t=t, gray=gray, color=color)
        self._last_color = image if image.ndim == 3 else color
        self._index += 1
        return frame

    def snapshot_jpeg(self) -> bytes:
        """JPEG of the last decoded frame; HardwareError before the first frame."""
        if self._last_color is None:
            raise HardwareError("no frame has been read yet", device=self._name)
        ok, data = cv2.imencode(".jpg", self._last_color)
        if not ok:
            raise HardwareError("JPEG encoding failed", device=self._name)
        return bytes(data.tobytes())

    def close(self) -> None:
        """Release the capture."""
        if not self._closed:
            self._cap.release()
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
        """Release the capture."""
        self.close()

"""The frame type every camera backend produces and the protocol they share.

A frame carries the grayscale image the analyzer works on (a picamera2 lores
Y plane, or OpenCV's conversion of a colour frame) and, when the backend has
one cheaply, the colour image for evidence snapshots and annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["ColorImage", "Frame", "FrameSource", "GrayImage"]

GrayImage = NDArray[np.uint8]
ColorImage = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame.

    ``index`` counts frames from 0 in capture (decode) order; ``t`` is seconds
    since the first frame of the source, from the capture clock when the
    backend has one, else ``index / fps``.
    """

    index: int
    t: float
    gray: GrayImage
    color: ColorImage | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the grayscale image in pixels."""
        height, width = self.gray.shape[:2]
        return int(width), int(height)


@runtime_checkable
class FrameSource(Protocol):
    """What the analyzer and the agent need from a camera backend.

    Contract (every backend, checked by ``tests/sensors/test_sources_contract.py``):

    * ``read()`` returns frames with strictly increasing ``index`` and
      non-decreasing ``t``, and ``None`` once the source is exhausted (a file
      ended); a live camera blocks until the next frame instead.
    * ``gray`` is a C-contiguous ``uint8`` array of shape ``(height, width)``
      matching ``size``.
    * ``snapshot_jpeg()`` returns a JPEG of the most recent frame at the best
      resolution the backend has (picamera2: its main stream) for evidence.
    * ``close()`` is idempotent; sources are context managers.
    """

    @property
    def fps(self) -> float:
        """Nominal frames per second (used to turn time constants into frames)."""
        ...

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of ``Frame.gray``."""
        ...

    def read(self) -> Frame | None:
        """Return the next frame, or ``None`` when the source has ended."""
        ...

    def snapshot_jpeg(self) -> bytes:
        """JPEG bytes of the latest frame, for evidence."""
        ...

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
        ...

    def __enter__(self) -> Self:
        """Return the source itself."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the source."""
        ...

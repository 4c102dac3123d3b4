"""Door movement seen by the camera, for devices without a reed switch (``door.fitted = false``).

The analyzer's background model marks moving foreground; after each frame
:class:`DoorwayActivity` asks whether any foreground blob lies in the
doorway region (within ``reach`` threshold-lengths of the threshold segment,
on either side, and not far beyond its ends: a swinging door leaf or a
person at the door, not a neighbour walking past further down the corridor).
Activity that persists ``start_s`` counts as "the door opened"; none for
``stop_s`` as "the door closed". The agent feeds those transitions to the
same episode tracker as a reed switch's, so an episode ends after the
door's quiet time with no movement.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_config.scene import PixelLine
from sensors.analyzer import DoorwayAnalyzer
from sensors.tracking import Blob

__all__ = ["DoorwayActivity", "blob_in_doorway"]


def blob_in_doorway(blob: Blob, line: PixelLine, reach: float, ends: float) -> bool:
    """Whether ``blob`` (working pixels) touches the doorway region around ``line``."""
    band = reach * line.length
    points = ((blob.cx, blob.y + blob.h), (blob.cx, blob.y + blob.h / 2.0),
              (blob.x, blob.y + blob.h), (blob.x + blob.w, blob.y + blob.h))
    return any(abs(line.signed_distance(x, y)) <= band and -ends <= line.along(x, y) <= 1 + ends
               for x, y in points)


@dataclass
class DoorwayActivity:
    """Debounced "something moves in the doorway" from the analyzer's foreground.

    ``update`` returns True when the doorway becomes active ("opened"), False
    when it has been still for ``stop_s`` ("closed"), None otherwise.
    """

    reach: float = 0.6
    ends: float = 0.3
    start_s: float = 0.2
    stop_s: float = 1.0
    active: bool = False
    _moving_since: float | None = None
    _still_since: float | None = None
    _line: PixelLine | None = None
    _line_key: tuple[int, int, int] | None = None

    def update(self, analyzer: DoorwayAnalyzer, frame_size: tuple[int, int],
               t: float) -> bool | None:
        """Look at the blobs of the frame just fed (``frame_size`` in frame pixels, ``t`` s)."""
        moving = any(blob_in_doorway(b, self._line_for(analyzer, frame_size), self.reach,
                                     self.ends) for b in analyzer.blobs)
        if moving:
            self._still_since = None
            if self._moving_since is None:
                self._moving_since = t
            if not self.active and t - self._moving_since >= self.start_s:
                self.active = True
                return True
            return None
        self._moving_since = None
        if self._still_since is None:
            self._still_since = t
        if self.active and t - self._still_since >= self.stop_s:
            self.active = False
            return False
        return None

    def _line_for(self, analyzer: DoorwayAnalyzer, frame_size: tuple[int, int]) -> PixelLine:
        # The analyzer's blobs are in its working image (frame pixels x scale).
        scale = analyzer.scale
        size = (round(frame_size[0] * scale), round(frame_size[1] * scale))
        key = (*size, id(analyzer.scene))  # a new scene (remote config) moves the line
        if self._line is None or self._line_key != key:
            self._line, self._line_key = analyzer.scene.in_pixels(*size), key
        return self._line

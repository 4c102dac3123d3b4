"""A small learned check on the analyzer's crossings: is this a person who crossed?

The analyzer (:mod:`sensors.analyzer`) decides crossings from moving
foreground; what it gets wrong most is one person counted twice (a head, a
shadow, the door leaf they pushed, the body's lower half each make a track
that crosses) and things that are not people at all. Whether a region is a
whole person is something appearance and silhouette show at a glance, where
thresholds on size and travel keep failing. So, at the moment the analyzer
is about to report a crossing (a few times per track, never per frame), the
region around the crossing track is cut out of the working image and its
foreground mask, shrunk to :data:`SIZE` pixels square, and scored by a tiny
convolutional network; a crossing scoring below the gate is not reported.

The network is ours: trained on the corpus's tuning split only
(``tools/personnet/``, which says how to reproduce it and what it was
trained on), exported to ONNX and run through OpenCV's DNN module, which
opencv-python-headless already ships, so the device needs no PyTorch and
nothing is downloaded at run time. ``sensors/models/personnet.onnx`` is the
shipped file; ``sensors/models/README.md`` gives its licence and data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from sensors.frames import GrayImage

__all__ = ["CONTEXT", "DEFAULT_MODEL", "SIZE", "PersonNet", "crop_region", "prepare"]

# Input side in pixels: a person 30-150 px tall in the working image shrinks
# to this without losing the silhouette, and the network stays ~10k weights.
SIZE = 32
# The region is this many times the box's larger side: enough of the
# surroundings to see whether the box is a whole body or a piece of one
# (a head over a body, legs under a torso, a shadow beside feet).
CONTEXT = 1.25
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "personnet.onnx"

FloatArray = NDArray[np.float32]


def crop_region(image: GrayImage, box: tuple[float, float, float, float],
                scale: float, size: int) -> GrayImage:
    """The square around ``box`` (``x, y, w, h`` in pixels), ``scale`` times the
    box's larger side, resized to ``size`` square; outside the picture is 0."""
    x, y, w, h = box
    side = max(2.0, scale * max(w, h))
    cx, cy = x + w / 2.0, y + h / 2.0
    # An affine map of the square onto size x size pixels crops, pads and
    # resizes in one call, without copying the whole picture.
    k = size / side
    m = np.array([[k, 0.0, size / 2.0 - k * cx], [0.0, k, size / 2.0 - k * cy]], np.float64)
    interpolation = cv2.INTER_AREA if k < 1.0 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, m, (size, size), flags=interpolation,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.asarray(out, np.uint8)


def prepare(gray: GrayImage, mask: GrayImage) -> FloatArray:
    """Two channels the network reads: the gray crop standardized (so exposure
    and contrast of the camera do not matter) and the foreground mask in 0..1."""
    g = gray.astype(np.float32)
    g = (g - float(g.mean())) / (float(g.std()) + 8.0)
    m = mask.astype(np.float32) / 255.0
    return np.stack([g, m]).astype(np.float32)


class PersonNet:
    """The shipped network through ``cv2.dnn``: :meth:`score` a region, 0..1."""

    def __init__(self, path: Path | str = DEFAULT_MODEL) -> None:
        """Load the ONNX file at ``path`` (one thread: the analyzer owns the core)."""
        self.path = Path(path)
        self._net = cv2.dnn.readNetFromONNX(str(self.path))
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.calls = 0

    def inputs(self, gray: GrayImage, mask: GrayImage,
               box: tuple[float, float, float, float]) -> FloatArray:
        """The network's input for the region around ``box`` (working-image pixels)."""
        return prepare(crop_region(gray, box, CONTEXT, SIZE),
                       crop_region(mask, box, CONTEXT, SIZE))

    def score(self, gray: GrayImage, mask: GrayImage,
              box: tuple[float, float, float, float]) -> float:
        """Probability that the region around ``box`` is one whole person."""
        return self.score_inputs(self.inputs(gray, mask, box))

    def score_inputs(self, x: FloatArray) -> float:
        """Probability for prepared inputs (``(2, SIZE, SIZE)``)."""
        self.calls += 1
        self._net.setInput(x[None])
        logit = float(np.asarray(self._net.forward()).reshape(-1)[0])
        return 1.0 / (1.0 + float(np.exp(-logit)))

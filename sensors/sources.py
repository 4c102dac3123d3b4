"""Choose a camera backend by name, importing it only when chosen.

The device configuration has a ``camera.backend`` field; ``open_source``
turns it into a :class:`~sensors.frames.FrameSource`. An unknown name or a
backend whose library is missing is a :class:`~ground.errors.HardwareError`
at start-up, never a silent fallback to another camera.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from ground.errors import HardwareError
from sensors.frames import FrameSource

__all__ = ["BACKENDS", "Backend", "open_source"]

Backend = Literal["picamera2", "opencv", "synthetic"]

BACKENDS: dict[str, str] = {
    "picamera2": "sensors.source_picamera2:Picamera2Source",
    "opencv": "sensors.source_opencv:OpenCVSource",
    "synthetic": "sensors.source_synthetic:SyntheticSource",
}
"""Backend name → ``module:Class``; the module is imported on first use only."""


def open_source(backend: str, *args: Any, **kwargs: Any) -> FrameSource:
    """Construct backend ``backend`` with the given arguments.

    ``opencv`` takes the camera index / URL / file; ``synthetic`` a
    :class:`~sensors.source_synthetic.Scenario`; ``picamera2`` keyword
    arguments (``lores_size``, ``main_size``, ``fps``).
    """
    target = BACKENDS.get(backend)
    if target is None:
        known = ", ".join(sorted(BACKENDS))
        raise HardwareError(f"unknown camera backend {backend!r}; known: {known}", device=backend)
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HardwareError(f"camera backend cannot be imported: {exc}", device=backend) from exc
    source: FrameSource = getattr(module, class_name)(*args, **kwargs)
    return source

"""Tamper checks on the camera picture: covered or blinded, moved, frozen.

All checks are statistics of a small (80 px wide) copy of the frame, so they
cost almost nothing and can run on every frame:

* **covered / blinded**: the picture is dark (mean below ``dark_level``),
  saturated (mean above ``bright_level``) or featureless (standard deviation
  below ``uniform_std``, a hand or tape over the lens) for ``hold`` seconds.
* **moved**: the picture no longer matches the reference taken at start (or
  by :meth:`TamperMonitor.set_reference`, e.g. at commissioning). Matching is
  the correlation of gradient-magnitude images after removing the mean, so a
  light switching on does not look like a move but a new view does. People
  passing lower the correlation only briefly; it must stay low for ``hold``.
* **frozen**: consecutive frames are bit-for-bit (nearly) identical for
  ``hold`` seconds, which a live sensor with noise never produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from sensors.frames import Frame, GrayImage

__all__ = ["TamperConfig", "TamperFinding", "TamperKind", "TamperMonitor"]

TamperKind = Literal["covered", "blinded", "moved", "frozen"]


class TamperFinding(BaseModel):
    """A tamper condition that started (``active``) or ended on ``frame``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TamperKind
    active: bool
    frame: int
    t: float
    detail: str


@dataclass(frozen=True, slots=True)
class TamperConfig:
    """Thresholds; gray levels 0..255, times in seconds."""

    dark_level: float = 25.0
    bright_level: float = 235.0
    uniform_std: float = 6.0
    moved_correlation: float = 0.4
    frozen_difference: float = 0.3
    hold: float = 1.0
    reference_after: float = 1.0


def _small(gray: GrayImage) -> np.ndarray:
    h, w = gray.shape
    size = (80, max(8, round(80 * h / w)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _edges(small: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1)
    mag = np.asarray(cv2.magnitude(gx, gy), np.float32)
    mag -= float(mag.mean())
    norm = float(np.linalg.norm(mag))
    return mag / norm if norm > 1e-6 else mag


class TamperMonitor:
    """Feed every frame to :meth:`check`; it returns state changes only."""

    def __init__(self, fps: float, config: TamperConfig | None = None) -> None:
        """Create a monitor for a stream at ``fps``."""
        self._cfg = config or TamperConfig()
        self._hold = max(1, round(self._cfg.hold * fps))
        self._reference_at = max(1, round(self._cfg.reference_after * fps))
        self._reference: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._counts: dict[TamperKind, int] = {"covered": 0, "blinded": 0, "moved": 0, "frozen": 0}
        self.active: set[TamperKind] = set()
        self._seen = 0

    def set_reference(self, gray: GrayImage) -> None:
        """Take ``gray`` as what the camera is supposed to see."""
        self._reference = _edges(_small(gray))

    def check(self, frame: Frame) -> list[TamperFinding]:
        """Update with one frame; return conditions that started or ended on it."""
        small = _small(frame.gray)
        mean_arr, std_arr = cv2.meanStdDev(small)
        mean, std = float(mean_arr.ravel()[0]), float(std_arr.ravel()[0])
        raw: dict[TamperKind, bool] = {
            "covered": mean < self._cfg.dark_level or std < self._cfg.uniform_std,
            "blinded": mean > self._cfg.bright_level,
            "frozen": self._frozen(small),
            "moved": False,
        }
        if raw["covered"] and raw["blinded"]:
            raw["covered"] = False
        usable = not (raw["covered"] or raw["blinded"])
        self._seen += 1
        if usable and self._reference is None and self._seen >= self._reference_at:
            self._reference = _edges(small)
        if usable and self._reference is not None:
            score = float((self._reference * _edges(small)).sum())
            raw["moved"] = score < self._cfg.moved_correlation
        self._previous = small
        changes = (self._debounce(kind, now, frame, mean, std) for kind, now in raw.items())
        return [f for f in changes if f is not None]

    def _frozen(self, small: np.ndarray) -> bool:
        if self._previous is None:
            return False
        return float(cv2.norm(small, self._previous, cv2.NORM_L1)) / small.size < (
            self._cfg.frozen_difference
        )

    def _debounce(
        self, kind: TamperKind, now: bool, frame: Frame, mean: float, std: float
    ) -> TamperFinding | None:
        count = self._counts[kind] = min(self._hold, self._counts[kind] + 1) if now else 0
        if count >= self._hold and kind not in self.active:
            self.active.add(kind)
            detail = f"mean={mean:.0f} std={std:.1f}"
            return TamperFinding(
                kind=kind, active=True, frame=frame.index, t=frame.t, detail=detail
            )
        if count == 0 and kind in self.active:
            self.active.discard(kind)
            return TamperFinding(kind=kind, active=False, frame=frame.index, t=frame.t, detail="")
        return None

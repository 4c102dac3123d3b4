"""The door line on the wire: the threshold across the doorway and a point on its inside.

The same two facts as the device's ``camera.scene`` (``firmware_config.scene.Scene``),
as the contract carries them: a commissioning event reports the line the
device uses, and the dashboard's redrawn line goes back to the device inside a
``config_update``. Coordinates are normalized to 0..1 of the picture's width
and height, so a line drawn on the aim picture fits any capture resolution.
The checks mirror the device's (a line too short, an inside point on the
line), so the dashboard refuses what the device would refuse.
"""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DoorLine", "Unit"]

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
_Point = tuple[Unit, Unit]

# Same limits as firmware_config.scene: shorter cannot be a doorway; closer means nothing.
_MIN_LINE_LENGTH = 0.02
_MIN_INSIDE_DISTANCE = 0.01


class DoorLine(BaseModel):
    """Threshold ``[[x1, y1], [x2, y2]]`` and ``inside_point`` ``[x, y]``, normalized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: tuple[_Point, _Point] = Field(description="Two points across the doorway (sill)")
    inside_point: _Point = Field(description="A point on the household's side of the line")

    @model_validator(mode="after")
    def _usable(self) -> Self:
        (x1, y1), (x2, y2) = self.threshold
        length = math.hypot(x2 - x1, y2 - y1)
        if length < _MIN_LINE_LENGTH:
            raise ValueError("the threshold line is too short to be a doorway")
        px, py = self.inside_point
        distance = abs((x2 - x1) * (y1 - py) - (x1 - px) * (y2 - y1)) / length
        if distance < _MIN_INSIDE_DISTANCE:
            raise ValueError("the inside point lies on the threshold line")
        return self

    def scene_update(self, description: str) -> dict[str, object]:
        """The ``config_update`` body that gives a device this line."""
        return {"camera": {"scene": {
            "threshold": [list(p) for p in self.threshold],
            "inside_point": list(self.inside_point),
            "description": description,
        }}}

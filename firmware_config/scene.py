"""Where the doorway is: a threshold line and a point on its inside.

Coordinates are normalized (x / width, y / height), so one scene serves any
capture resolution. The device configuration reuses :class:`Scene` as its
``scene`` section; ``doorwatch analyze --scene S.toml`` loads the same fields
from a TOML file of their own.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ground.errors import ConfigError

__all__ = ["PixelLine", "Point", "Scene", "load_scene"]

Point = tuple[float, float]

# A line shorter than this (normalized) cannot be a doorway and is a typo.
_MIN_LINE_LENGTH = 0.02
# The inside point must be clearly off the line or "inside" means nothing.
_MIN_INSIDE_DISTANCE = 0.01


def _check_unit(point: Point, name: str) -> None:
    for value in point:
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise ValueError(f"{name} coordinates must be within 0..1, got {list(point)}")


class Scene(BaseModel):
    """A doorway: the threshold line and which side of it is inside."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: tuple[Point, Point] = Field(
        title="Threshold line",
        description="Two points [[x1, y1], [x2, y2]] across the doorway (the sill), "
        "normalized to 0..1 of the image width and height.",
    )
    inside_point: Point = Field(
        title="Inside point",
        description="A point [x, y] (normalized) on the household's side of the threshold.",
    )
    description: str = Field(
        default="",
        title="Description",
        description="Free text for the installer: what the line follows.",
    )

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, value: tuple[Point, Point]) -> tuple[Point, Point]:
        _check_unit(value[0], "threshold")
        _check_unit(value[1], "threshold")
        (x1, y1), (x2, y2) = value
        length = math.hypot(x2 - x1, y2 - y1)
        if length < _MIN_LINE_LENGTH:
            raise ValueError(f"threshold is too short ({length:.3f} < {_MIN_LINE_LENGTH})")
        return value

    @field_validator("inside_point")
    @classmethod
    def _check_inside(cls, value: Point, info: ValidationInfo) -> Point:
        _check_unit(value, "inside_point")
        threshold = info.data.get("threshold")
        if threshold is None:  # the threshold itself was invalid and is reported
            return value
        (x1, y1), (x2, y2) = threshold
        px, py = value
        length = math.hypot(x2 - x1, y2 - y1)
        distance = abs((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)) / length
        if distance < _MIN_INSIDE_DISTANCE:
            raise ValueError("inside_point lies on the threshold line; put it inside the door")
        return value

    def in_pixels(self, width: int, height: int) -> PixelLine:
        """The threshold in pixel coordinates of a ``width`` x ``height`` image."""
        (x1, y1), (x2, y2) = self.threshold
        px, py = self.inside_point
        return PixelLine.build(
            (x1 * width, y1 * height), (x2 * width, y2 * height), (px * width, py * height)
        )


@dataclass(frozen=True, slots=True)
class PixelLine:
    """The threshold in pixels with the normal oriented towards the OUTSIDE.

    ``signed_distance`` is negative on the inside (door) side, positive
    outside; ``along`` is the position along the segment, 0 at the first end
    and 1 at the second.
    """

    a: Point
    b: Point
    normal: Point
    length: float

    @staticmethod
    def build(a: Point, b: Point, inside: Point) -> PixelLine:
        """Orient the normal so that ``inside`` has a negative distance."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        length = math.hypot(dx, dy)
        nx, ny = -dy / length, dx / length
        if (inside[0] - a[0]) * nx + (inside[1] - a[1]) * ny > 0:
            nx, ny = -nx, -ny
        return PixelLine(a=a, b=b, normal=(nx, ny), length=length)

    def signed_distance(self, x: float, y: float) -> float:
        """Pixels from the line; < 0 inside, > 0 outside."""
        return (x - self.a[0]) * self.normal[0] + (y - self.a[1]) * self.normal[1]

    def along(self, x: float, y: float) -> float:
        """Projection onto the segment, 0 at ``a`` and 1 at ``b``."""
        dx, dy = self.b[0] - self.a[0], self.b[1] - self.a[1]
        return ((x - self.a[0]) * dx + (y - self.a[1]) * dy) / (self.length**2)


def _field_of(error: ValidationError) -> str | None:
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    return ".".join(loc) or None


def load_scene(path: Path | str) -> Scene:
    """Read a scene from a TOML file; errors name the file and the field.

    The file holds ``threshold = [[x1, y1], [x2, y2]]`` and
    ``inside_point = [x, y]`` at its top level (or inside a ``[scene]`` table,
    the way the device configuration nests it).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("scene file does not exist", path=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read scene file: {exc}", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from exc
    data = raw.get("scene", raw) if isinstance(raw.get("scene"), dict) else raw
    try:
        return Scene.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(first["msg"], path=path, field=_field_of(exc)) from exc

"""How big one person looks at each place of this scene, learned while watching.

Why: people walking abreast make one blob, a person entering at the image
edge or half hidden makes a fragment, and a blob that swallowed someone
standing behind is too tall; all three are told apart from a single person
only by comparing the blob with *one person's size at that place*. That
size is a property of the scene (camera height, lens, distance), so it is
learned from every confirmed track that walked on its own, not only from
crossings, and not from a per-camera setting.

Model: the image is cut into horizontal bands (distance from the camera
changes mostly with the image row, both for a camera facing a door and for
one looking down); each band keeps the last samples of blob area, height
and width of walking, unshared tracks. One person's size at a row is a
low quantile of the samples of its band (ignoring samples below a fraction of the median
of all bands: speckle and registration residue that happened to drift),
borrowing from the neighbouring bands while it has too few (one band either
side only: the size changes with the row, and a far band's people would make
this band's look like fragments). People alone outnumber groups on any door, so the median is one
person even when pairs are frequent. Until enough samples exist the model
answers ``None`` and callers fall back to the blob's own size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.pixelpass import person_sizes

__all__ = ["PersonSize", "PersonSizeConfig", "PersonSizeModel"]


@dataclass(frozen=True, slots=True)
class PersonSizeConfig:
    """Tuning of :class:`PersonSizeModel`."""

    bands: int = 6
    memory: int = 400
    min_samples: int = 40
    refresh: int = 15
    floor: float = 0.3
    quantile: float = 0.35
    min_people: int = 3
    # How many bands either side a band with too few samples may borrow from.
    # One person's size changes with the row (perspective): a person in the
    # doorway is a third the height of one close to the camera, so samples
    # from far bands would make everyone there look like a fragment.
    borrow: int = 1


@dataclass(frozen=True, slots=True)
class PersonSize:
    """One person's blob at a place: area, height and width (pixels)."""

    area: float
    h: float
    w: float = 0.0


class PersonSizeModel:
    """Per-band medians of single-person blob size; see the module docstring."""

    def __init__(self, height: int, config: PersonSizeConfig | None = None) -> None:
        """A model for images ``height`` pixels tall (working resolution)."""
        self._cfg = config or PersonSizeConfig()
        self._height = max(1, height)
        n = self._cfg.bands
        # Each band's last ``memory`` samples (area, h, w), a ring: the oldest is
        # overwritten (only order statistics are taken, so the order is free).
        self._samples = np.zeros((n, self._cfg.memory, 3), np.float64)
        self._filled = [0] * n
        self._cache: list[PersonSize | None] = [None] * n
        self._added = 0
        self._sources: set[int] = set()

    def _band(self, y: float) -> int:
        n = self._cfg.bands
        return min(n - 1, max(0, int(y / self._height * n)))

    def add(self, y: float, area: float, h: float, source: int, w: float = 0.0) -> None:
        """A sample: a walking person alone (track ``source``), whose floor
        point is at row ``y``, with a blob of ``area``, height ``h`` and
        width ``w``. The model answers only once it has seen several
        different tracks: one person's many frames are one opinion."""
        band = self._band(y)
        self._samples[band, self._filled[band] % self._cfg.memory] = (area, h, w)
        self._filled[band] += 1
        self._added += 1
        if len(self._sources) < self._cfg.min_people:
            self._sources.add(source)
        if self._added % self._cfg.refresh == 0 and len(self._sources) >= self._cfg.min_people:
            # Refreshed on every ``refresh``-th sample: this runs on every few
            # frames for the pieces the analyzer learns from, so it is compiled
            # (sensors.pixelpass.person_sizes: every band in one call, the same
            # order statistics as the partial sorts of numpy arrays it replaced).
            cfg = self._cfg
            self._cache = [None if size is None else PersonSize(*size)
                           for size in person_sizes(self._samples, self._filled, cfg.floor,
                                                    cfg.min_samples, cfg.borrow, cfg.quantile)]

    @property
    def known(self) -> bool:
        """Whether the model answers for some row."""
        return any(c is not None for c in self._cache)

    def at(self, y: float) -> PersonSize | None:
        """One person's size at row ``y``, or ``None`` while the model knows too little."""
        return self._cache[self._band(y)]

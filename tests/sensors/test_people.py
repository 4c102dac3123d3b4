"""One person's size per row of the picture (sensors.people)."""

from __future__ import annotations

from sensors.people import PersonSizeModel


def test_a_band_borrows_only_from_its_neighbours() -> None:
    """Samples close to the camera (big people) answer for their own band and the
    next one, never for rows far up the picture, where people look much smaller
    (the doorway); there the model knows nothing yet."""
    model = PersonSizeModel(240)  # six bands of 40 rows
    for i in range(60):
        model.add(187.0, 4800.0, 140.0, source=i % 4, w=70.0)
    corridor = model.at(187.0)
    assert corridor is not None
    assert corridor.h == 140.0
    assert model.at(132.0) == corridor  # the next band up borrows
    assert model.at(100.0) is None  # two bands up: not the same person size
    assert model.at(20.0) is None

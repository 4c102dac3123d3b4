"""Crowds lying through the line counted by the foreground moving over it (sensors.lineslice)."""

from __future__ import annotations

import itertools
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from firmware_config.scene import PixelLine, Scene
from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer, Passage
from sensors.frames import Frame, GrayImage
from sensors.lineslice import LineSlice, SliceConfig

Canvas = npt.NDArray[np.floating[Any]]
SEEDS = [0, 1, 2]
RADIUS = 14
# Discs in a column overlap this much: touching umbrellas seen from above, one blob
# with a neck between each two.
STEP = 24


def _umbrellas(seed: int, groups: list[tuple[int, int]], count: int) -> list[GrayImage]:
    """Uniform dark discs (umbrellas seen from above: no texture) walking down 2 px a
    frame from y = 10 at x = 160 on a textured floor; ``groups`` are ``(first frame,
    how many in a column)``, the column's discs ``STEP`` px apart (one blob)."""
    rng = np.random.default_rng(seed)
    texture = rng.normal(0, 8, (240, 320)).astype(np.float32)
    base = 150.0 + cv2.GaussianBlur(texture, (0, 0), 1.5)
    frames: list[GrayImage] = []
    for i in range(count):
        image: Canvas = base.copy()
        for start, many in groups:
            if i >= start:
                for k in range(many):
                    cy = 10.0 + 2.0 * (i - start) - k * STEP
                    if cy > -RADIUS:
                        cv2.circle(image, (160, int(cy)), RADIUS, 60.0, -1)
        image += rng.normal(0, 2, image.shape).astype(np.float32)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def _crossings(groups: list[tuple[int, int]]) -> list[int]:
    """Frames at which each disc's centre passes the line (y = 120)."""
    return sorted(start + (110 + k * STEP) // 2 for start, many in groups for k in range(many))


def _passages(frames: list[GrayImage], config: AnalyzerConfig | None = None) -> list[Passage]:
    scene = Scene(threshold=((60 / 320, 0.5), (260 / 320, 0.5)), inside_point=(0.5, 0.25))
    analyzer = DoorwayAnalyzer(scene, 25.0, config)
    passages: list[Passage] = []
    for i, gray in enumerate(frames):
        passages += analyzer.feed(Frame(i, i / 25.0, gray))
    return sorted(passages + analyzer.finish(), key=lambda p: p.frame)


GROUPS = [(25, 1), (160, 1), (290, 1), (420, 4)]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_column_of_touching_umbrellas_is_counted_by_the_mask_moving_over_the_line(
    seed: int,
) -> None:
    """Three people alone, then four in a column of touching umbrellas: one blob one
    person wide, which the tracker counts once (4 passages in all, see the next test).
    The mask's necks and rims moving over the line count at least one more (against
    one person's area there), dated within a second of a crossing nobody else
    reported, in the Passage shape (a box, a confidence of its own).

    Not all four: the middle of a column of textureless discs has no edge to see
    moving, so the area counted over the line falls short of four people's (about
    2-2.5 units for 3 discs; bench/NOTES.md, slice, session 11).

    The column's discs cross two a second, faster than the counter lets people through
    (``gap``, see the test after the next one): the cap is off here; and its lanes are
    matched on every frame (``every`` 1: at the default 2 the discs' few edges give less
    area, and the count falls short of a fifth on two seeds of three)."""
    passages = _passages(_umbrellas(seed, GROUPS, 660),
                         AnalyzerConfig(line_slice=SliceConfig(gap=0.0, every=1)))
    assert {p.direction for p in passages} == {"out"}, passages
    assert 5 <= len(passages) <= 7, passages
    left = _crossings(GROUPS)
    for p in passages:
        near = min(left, key=lambda e: abs(e - p.frame))
        assert abs(near - p.frame) <= 25, (passages, left)
        left.remove(near)
    added = [p for p in passages if p.confidence == AnalyzerConfig().line_slice_confidence]
    assert added, passages
    assert all(p.box is not None and p.track < 0 for p in added)


@pytest.mark.parametrize("seed", SEEDS)
def test_without_the_line_counter_the_column_is_one_passage(seed: int) -> None:
    """The same scene with the counter off: what the tracker alone reports (4)."""
    config = AnalyzerConfig(line_slice=SliceConfig(enabled=False))
    passages = _passages(_umbrellas(seed, GROUPS, 660), config)
    assert len(passages) == 4, passages


@pytest.mark.parametrize("seed", SEEDS)
def test_a_column_faster_than_one_person_a_second_is_capped(seed: int) -> None:
    """What the cap on the walking rate costs: the same column, two discs a second, with
    the counter's defaults: every crossing it dates lies within a second of the tracker's
    report of the column (or of one it added), so it adds none (bench/NOTES.md, slice2)."""
    passages = _passages(_umbrellas(seed, GROUPS, 660))
    assert len(passages) == 4, passages


@pytest.mark.parametrize("seed", SEEDS)
def test_people_alone_add_nothing(seed: int) -> None:
    """Six people alone, one after the other: the tracker's six passages, none added."""
    groups = [(25 + 120 * k, 1) for k in range(6)]
    passages = _passages(_umbrellas(seed, groups, 25 + 120 * 6 + 60))
    assert len(passages) == 6, passages
    assert all(p.track > 0 for p in passages), passages


def test_a_still_mask_on_the_line_moves_nothing() -> None:
    """A blob standing on the line (a door leaf absorbed late, someone waiting) is no flow."""
    line = PixelLine.build((60.0, 120.0), (260.0, 120.0), (160.0, 60.0))
    counter = LineSlice(line, (320, 240), 25.0)
    mask = np.zeros((240, 320), np.uint8)
    cv2.circle(mask, (160, 120), RADIUS, 255, -1)
    found = [c for f in range(200) for c in counter.feed(f, mask, False, 600.0)]
    assert found == []
    assert counter._episode is not None
    assert max(counter._episode.people.values()) == 0.0


def _shuffle(config: SliceConfig, seed: int) -> list[int]:
    """Frames of the crossings the counter dates while a crush shuffles over the line:
    a blob of people (bars of foreground of random heights with gaps: necks, heads)
    lying through the line pushes 3 px a frame for 7 frames and falls back 3 px a frame
    for 3, for four seconds: its edges go over the line both ways all the time, and a
    person's area goes over it far faster than people walk through a door."""
    line = PixelLine.build((60.0, 120.0), (260.0, 120.0), (160.0, 60.0))
    counter = LineSlice(line, (320, 240), 25.0, config)
    rng = np.random.default_rng(seed)
    bars: list[tuple[int, int]] = []
    at = 0
    while at < 260:
        tall = int(rng.integers(5, 11))
        bars.append((at, tall))
        at += tall + int(rng.integers(3, 7))
    y = 60.0
    found: list[int] = []
    for f in range(160):
        if 10 <= f < 110:
            y += 3.0 if (f - 10) % 10 < 7 else -3.0
        mask = np.zeros((240, 320), np.uint8)
        if f >= 10:
            for top, tall in bars:
                cv2.rectangle(mask, (100, int(y) - top), (220, int(y) - top + tall), 255, -1)
        found += [c.frame for c in counter.feed(f, mask, False, 600.0)]
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_a_crush_shuffling_on_the_line_adds_at_most_one_person_a_second(seed: int) -> None:
    """Crossings dated within ``gap`` (1 s) of one added before are the same crush moving
    again, not more people (citybus_door_c1/c2/c3: bench/NOTES.md, slice2, session 11)."""
    uncapped = _shuffle(SliceConfig(gap=0.0), seed)
    assert any(b - a <= 25 for a, b in itertools.pairwise(uncapped)), uncapped
    capped = _shuffle(SliceConfig(), seed)
    assert capped, capped
    assert all(b - a > 25 for a, b in itertools.pairwise(capped)), capped
    assert len(capped) < len(uncapped)

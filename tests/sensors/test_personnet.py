"""The learned person check (sensors/personnet.py) and the analyzer's hook for it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer, Passage, Verifier
from sensors.frames import GrayImage
from sensors.personnet import CONTEXT, DEFAULT_MODEL, SIZE, PersonNet, crop_region, prepare
from sensors.source_synthetic import SCENARIOS, SyntheticSource


def _run(name: str, config: AnalyzerConfig | None = None,
         verifier: Verifier | None = None) -> list[Passage]:
    source = SyntheticSource(SCENARIOS[name], seed=0)
    analyzer = DoorwayAnalyzer(source.scene, source.fps, config, verifier)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        passages += analyzer.feed(frame)
    return passages + analyzer.finish()


def test_the_region_is_the_box_centred_with_its_context() -> None:
    image = np.zeros((240, 320), np.uint8)
    image[100:140, 150:170] = 255  # a box 20 wide, 40 tall
    region = crop_region(image, (150.0, 100.0, 20.0, 40.0), CONTEXT, SIZE)
    assert region.shape == (SIZE, SIZE)
    rows = np.flatnonzero(region.max(axis=1) > 127)
    cols = np.flatnonzero(region.max(axis=0) > 127)
    # 40 px of box in a 50 px region shrunk to 32: ~25.6 px tall, centred.
    assert 24 <= len(rows) <= 27
    assert abs((rows[0] + rows[-1]) / 2 - (SIZE - 1) / 2) <= 1
    assert 12 <= len(cols) <= 14
    assert abs((cols[0] + cols[-1]) / 2 - (SIZE - 1) / 2) <= 1


def test_a_region_past_the_picture_edge_is_padded_with_black() -> None:
    image = np.full((240, 320), 200, np.uint8)
    region = crop_region(image, (-10.0, -10.0, 20.0, 40.0), CONTEXT, SIZE)
    assert region[0, 0] == 0
    assert region[-1, -1] == 200


def test_the_inputs_do_not_depend_on_exposure() -> None:
    rng = np.random.default_rng(0)
    gray: GrayImage = rng.integers(40, 120, (SIZE, SIZE), dtype=np.uint8)
    mask: GrayImage = np.zeros((SIZE, SIZE), np.uint8)
    brighter = (gray.astype(np.int32) * 2).clip(0, 255).astype(np.uint8)
    a, b = prepare(gray, mask), prepare(brighter, mask)
    assert a.shape == (2, SIZE, SIZE)
    assert a.dtype == np.float32
    # Not exactly equal (the +8 in the spread keeps flat regions flat), but close.
    assert float(np.abs(a[0] - b[0]).mean()) < 0.1


def test_the_shipped_network_loads_through_opencv_and_gives_a_probability() -> None:
    net = PersonNet(DEFAULT_MODEL)
    image = np.full((240, 320), 120, np.uint8)
    image[80:170, 150:175] = 40
    mask = np.zeros_like(image)
    mask[80:170, 150:175] = 255
    p = net.score(image, mask, (150.0, 80.0, 25.0, 90.0))
    assert 0.0 <= p <= 1.0
    assert net.score(image, mask, (150.0, 80.0, 25.0, 90.0)) == p
    assert net.calls == 2


def test_a_crossing_the_check_turns_down_is_not_reported() -> None:
    assert _run("exit"), "the scene must have a crossing for this test to mean anything"
    assert _run("exit", verifier=lambda *_: 0.0) == []


def test_a_crossing_the_check_accepts_is_reported_as_without_it() -> None:
    calls: list[tuple[int, int]] = []

    def accept(gray: GrayImage, mask: GrayImage, box: tuple[float, float, float, float],
               track: int, frame: int) -> float:
        assert gray.shape == mask.shape
        assert min(box[2], box[3]) > 0
        calls.append((track, frame))
        return 1.0

    for name in ("exit", "exit_then_entry", "pair_exit"):
        calls.clear()
        assert _run(name, verifier=accept) == _run(name), name
        # A few looks per crossing, never one per frame.
        tracks = {t for t, _ in calls}
        assert 0 < len(calls) <= 4 * max(1, len(tracks)), (name, calls)


@pytest.mark.parametrize("name", ["exit", "entry", "exit_then_entry"])
def test_the_shipped_network_keeps_the_synthetic_crossings(name: str) -> None:
    config = dataclasses.replace(AnalyzerConfig(), person_model=str(DEFAULT_MODEL))
    assert _run(name, config) == _run(name)

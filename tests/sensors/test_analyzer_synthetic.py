"""The analyzer on scripted synthetic corridors, with exact expected outcomes.

Cases marked ``xfail(strict=True)`` are known weaknesses written down as
tests: they fail today for the stated reason, and the strict mark makes the
suite fail as soon as they start passing, so the mark gets removed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from firmware_config.scene import Scene
from sensors.analyzer import DoorwayAnalyzer, Passage, TrackSummary
from sensors.frames import Frame, GrayImage
from sensors.source_synthetic import (
    SCENARIOS,
    SILL_Y,
    DoorOpen,
    ExpectedPassage,
    Scenario,
    SyntheticSource,
    Walk,
    person,
)

Outcome = tuple[list[Passage], list[TrackSummary], list[ExpectedPassage]]


def _analysed(source: SyntheticSource) -> tuple[list[Passage], DoorwayAnalyzer]:
    """Every frame of ``source`` through a fresh analyzer: its passages, and the analyzer."""
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        passages += analyzer.feed(frame)
    return passages + analyzer.finish(), analyzer


def _run(name: str, seed: int = 0) -> Outcome:
    source = SyntheticSource(SCENARIOS[name], seed=seed)
    passages, analyzer = _analysed(source)
    return passages, analyzer.summaries, source.expected_passages()


def _same(passages: list[Passage], expected: list[ExpectedPassage], fps: float = 25.0) -> bool:
    if len(passages) != len(expected):
        return False
    ordered = sorted(passages, key=lambda p: p.frame)
    return all(
        p.direction == e.direction and abs(p.frame - e.frame) <= fps
        for p, e in zip(ordered, expected, strict=True)
    )


SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name", ["static", "door_only", "lighting", "covered", "blinded", "frozen", "bumped"]
)
def test_no_passage_without_people(name: str, seed: int) -> None:
    passages, _, expected = _run(name, seed)
    assert expected == []
    assert passages == []


@pytest.mark.parametrize("seed", SEEDS)
def test_handover_produces_no_passage(seed: int) -> None:
    passages, _, _ = _run("handover", seed)
    assert passages == []


@pytest.mark.parametrize("seed", SEEDS)
def test_handover_is_summarised_as_handover(seed: int) -> None:
    _, summaries, _ = _run("handover", seed)
    assert [s.handover for s in summaries].count(True) == 1, summaries


def _at_door(scenario: Scenario, seed: int) -> list[TrackSummary]:
    source = SyntheticSource(scenario, seed=seed)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    while (frame := source.read()) is not None:
        analyzer.feed(frame)
    analyzer.finish()
    return [s for s in analyzer.summaries if s.at_door is not None]


@pytest.mark.parametrize("seed", SEEDS)
def test_coming_to_the_door_from_inside_is_marked_at_door(seed: int) -> None:
    """The presence check-in's cue (agent/checkin.py): a resident who walks up to the
    threshold from the home, whether they go back in or out (then also a passage)."""
    for name in ("handover", "exit"):
        found = _at_door(SCENARIOS[name], seed)
        assert len(found) == 1, (name, found)
        walk = next(a for a in SCENARIOS[name].actions if isinstance(a, Walk))
        # At the door while the walk is at the sill (30-60 % of it), give or take the
        # time it takes to walk half a body height.
        sill = (walk.start + 0.3 * walk.duration) * 25, (walk.start + 0.8 * walk.duration) * 25
        assert sill[0] <= found[0].at_door <= sill[1], (name, found)  # type: ignore[operator]


@pytest.mark.parametrize("seed", SEEDS)
def test_other_movement_is_never_at_door(seed: int) -> None:
    """The door leaf swinging, people walking along the corridor (also close to the
    threshold) and someone coming in from outside are no resident answering the door."""
    for scenario in (
        SCENARIOS["door_only"],
        SCENARIOS["entry"],
        Scenario((Walk("pass", 1.0, duration=4.0),), 7.0),
        Scenario((Walk("pass", 1.0, duration=4.0, row=SILL_Y + 0.05),), 7.0),
        Scenario((DoorOpen(1.0, 5.0), Walk("pass", 2.0, duration=4.0, side=-1)), 8.0),
        # The leaf swinging shut behind a passer-by is first seen as a short piece
        # above the sill whose box then grows down to it: no walk up to the line.
        Scenario((DoorOpen(2.3, 3.0), Walk("pass", 2.5, duration=3.0),
                  Walk("pass", 5.5, duration=3.0, side=-1, row=SILL_Y + 0.05)), 10.0),
    ):
        assert _at_door(scenario, seed) == [], scenario


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["exit", "entry", "exit_then_entry", "exit_with_lighting"])
def test_people_scenes_give_exactly_the_scripted_passages(name: str, seed: int) -> None:
    passages, _, expected = _run(name, seed)
    assert _same(passages, expected), (passages, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.xfail(strict=True, reason="two people abreast from the start stay one blob, "
                   "and nobody walks alone in this scene to learn one person's size from; "
                   "the crossing is kept for a recount that never comes")
def test_a_pair_gives_two_passages(seed: int) -> None:
    passages, _, expected = _run("pair_exit", seed)
    assert _same(passages, expected), (passages, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_exit_is_never_reported_as_entry(seed: int) -> None:
    passages, _, _ = _run("exit", seed)
    assert passages, "the exit was missed"
    assert {p.direction for p in passages} == {"out"}


def _passages_at(name: str, seed: int, size: tuple[int, int]) -> list[Passage]:
    source = SyntheticSource(SCENARIOS[name], seed=seed, size=size)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        passages += analyzer.feed(frame)
    return passages + analyzer.finish()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["exit", "entry"])
def test_a_passage_carries_the_persons_box_at_the_crossing(name: str, seed: int) -> None:
    """Normalized to the picture: the synthetic person crosses at x 0.5 with the
    feet on the sill (y 0.55) and the head near y 0.2, at any resolution."""
    (passage,) = _passages_at(name, seed, (320, 240))
    assert passage.box is not None
    x1, y1, x2, y2 = passage.box
    assert x1 < 0.5 < x2
    assert x2 - x1 < 0.2
    assert y1 == pytest.approx(0.2, abs=0.04)
    assert y2 == pytest.approx(SILL_Y, abs=0.05)
    (larger,) = _passages_at(name, seed, (640, 480))
    assert larger.box == pytest.approx(passage.box, abs=0.03)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_view_is_learned_from_how_people_walk(seed: int) -> None:
    """The synthetic camera faces the door: a walker's head stays near the
    horizon while the feet move, so the view is "front" (slope about 0) and
    the reference point is the feet even for a blob as wide as tall."""
    source = SyntheticSource(SCENARIOS["exit_then_entry"], seed=seed)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    assert analyzer.view_slope is None
    while (frame := source.read()) is not None:
        analyzer.feed(frame)
    slope = analyzer.view_slope
    assert slope is not None
    assert slope < analyzer.config.view_flat


def test_feed_accepts_any_resolution_and_scales_to_the_working_width() -> None:
    source = SyntheticSource(SCENARIOS["static"], size=(640, 480))
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    while (frame := source.read()) is not None:
        assert analyzer.feed(frame) == []
    assert analyzer.scale == pytest.approx(0.5)


def test_a_flat_frame_sequence_yields_nothing() -> None:
    source = SyntheticSource(SCENARIOS["static"])
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    flat = np.full((240, 320), 128, np.uint8)
    found = [analyzer.feed(Frame(i, i / 25.0, flat)) for i in range(50)]
    assert found == [[]] * 50


def _singles_then_pair(lane: float) -> Scenario:
    """Three people alone (the scene learns one person's size), then two who
    come out side by side, merge into one blob before the sill and part after."""
    return Scenario(
        (*person("exit", 1.0), *person("entry", 5.5, side=-1, shade=70),
         *person("exit", 10.0, side=-1), *person("exit", 14.5, lane=-lane),
         Walk("exit", 14.6, lane=lane, shade=80)),
        19.0,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_a_pair_merging_before_the_sill_gives_two_passages(seed: int) -> None:
    """The three singles teach the scene one person's size (each walked a body
    length as tall as where it started, not as the camera, ever closer, makes
    it); the pair merges as the second of them is still in the band, so its
    blob is counted as two once on the far side."""
    source = SyntheticSource(_singles_then_pair(0.05), seed=seed)
    passages, _ = _analysed(source)
    expected = source.expected_passages()
    assert len(expected) == 5
    assert _same(passages, expected), (passages, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize("row", [0.0, 0.01, 0.02, 0.03])
def test_walking_along_just_outside_the_sill_gives_no_passage(
    row: float, side: int, seed: int
) -> None:
    """Someone who enters the picture at its edge next to the sill and walks
    along it never was clearly inside: no crossing, however the entering
    part-body blob first falls."""
    walk = Walk("pass", 0.5, duration=4.0, side=side, row=SILL_Y + row + 1e-6)
    source = SyntheticSource(Scenario((walk,), 5.0), seed=seed)
    passages, _ = _analysed(source)
    assert passages == []


# A frame being drawn: float, noise is added before it becomes 8-bit.
Canvas = npt.NDArray[np.floating[Any]]


def _noisy_frames(seed: int, count: int, draw: Callable[[Canvas, int], None]
                  ) -> list[GrayImage]:
    """``count`` frames of one textured floor (from ``seed``), ``draw(image, i)``
    painting frame ``i``'s people on it, plus sensor noise."""
    rng = np.random.default_rng(seed)
    texture = rng.normal(0, 8, (240, 320)).astype(np.float32)
    base = 150.0 + cv2.GaussianBlur(texture, (0, 0), 1.5)
    frames: list[GrayImage] = []
    for i in range(count):
        image = base.copy()
        draw(image, i)
        image += rng.normal(0, 2, image.shape).astype(np.float32)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames



def _passages_over(frames: Iterable[GrayImage], line: tuple[int, int] = (60, 260)) -> list[Passage]:
    """The analyzer's passages over drawn 320-px frames at 25 fps, the threshold a
    horizontal line at mid-height from x = ``line[0]`` to ``line[1]``, inside above it."""
    scene = Scene(threshold=((line[0] / 320, 0.5), (line[1] / 320, 0.5)), inside_point=(0.5, 0.25))
    analyzer = DoorwayAnalyzer(scene, 25.0)
    passages: list[Passage] = []
    for i, gray in enumerate(frames):
        passages += analyzer.feed(Frame(i, i / 25.0, gray))
    return passages + analyzer.finish()

def _parting_pair(seed: int) -> list[GrayImage]:
    """Two people (20 x 60 px, abreast, one blob) walk down from the inside
    and step apart 8 px before the line (y = 120), each then crossing it."""
    def draw(image: Canvas, i: int) -> None:
        if i >= 25:
            cy = 30.0 + 2.0 * (i - 25)
            apart = max(0.0, cy - 112.0)
            for side in (-1, 1):
                cx = 160.0 + side * (11.0 + apart)
                cv2.rectangle(image, (int(cx - 10), int(cy - 30)), (int(cx + 10), int(cy + 30)),
                              60.0, -1)

    return _noisy_frames(seed, 150, draw)


@pytest.mark.parametrize("seed", SEEDS)
def test_people_parting_near_the_line_are_each_counted(seed: int) -> None:
    """The one who parts from the group's blob near the line keeps the
    group's history (it came from deep inside), so both crossings count,
    at the moment the pair's reference point passed the line (frame 70)."""
    passages = _passages_over(_parting_pair(seed), line=(100, 220))
    assert [p.direction for p in passages] == ["out", "out"], passages
    assert len({p.track for p in passages}) == 2
    assert all(abs(p.frame - 70) <= 3 for p in passages), passages


def _rectangles(seed: int, walkers: list[tuple[int, tuple[float, ...]]], count: int
                ) -> list[GrayImage]:
    """People as 20 x 60 px rectangles walking down 2 px a frame from y = 10,
    one group per ``(first frame, x centres)``: touching rectangles are one blob."""
    def draw(image: Canvas, i: int) -> None:
        for start, xs in walkers:
            if i >= start:
                cy = 10.0 + 2.0 * (i - start)
                for x in xs:
                    cv2.rectangle(image, (int(x - 10), int(cy - 30)), (int(x + 10), int(cy + 30)),
                                  60.0, -1)

    return _noisy_frames(seed, count, draw)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_pair_seen_before_anyone_alone_is_recounted_once_one_person_is_known(
    seed: int,
) -> None:
    """Two people abreast are the first to cross: one blob, nothing to compare
    it with, one passage. After three people alone have walked out, the
    scene knows one person's size there and the pair's second passage is
    reported, dated at the pair's crossing (frame 80)."""
    walkers = [(25, (149.0, 171.0)), (160, (160.0,)), (290, (130.0,)), (420, (190.0,))]
    passages = _passages_over(_rectangles(seed, walkers, 560))
    frames = sorted(p.frame for p in passages)
    assert {p.direction for p in passages} == {"out"}
    assert len(frames) == 5, passages
    assert all(abs(f - e) <= 3 for f, e in zip(frames, [80, 80, 215, 345, 475], strict=True))


def _lost_near_the_line(seed: int, *, followed: bool) -> list[GrayImage]:
    """A person (20 x 60 px) walks down 1 px a frame; at frame 115, near the
    line (y = 120), their blob jumps 54 px sideways (beyond the tracker's
    gate: another track picks them up there, as when people cross or merge).
    ``followed=False``: nobody walked there before, the blob just appears."""
    def draw(image: Canvas, i: int) -> None:
        if i >= (25 if followed else 115):
            cy = 10.0 + (i - 25)
            x = 130.0 if i < 115 else 184.0
            cv2.rectangle(image, (int(x - 10), int(cy - 30)), (int(x + 10), int(cy + 30)),
                          60.0, -1)

    return _noisy_frames(seed, 230, draw)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("followed", [True, False])
def test_a_track_that_picks_someone_up_near_the_line_is_vouched_for(
    seed: int, followed: bool
) -> None:
    """The track that crosses was born near the line (never clearly inside);
    it counts only because the track that followed that person from deep
    inside was lost right there, just before."""
    passages = _passages_over(_lost_near_the_line(seed, followed=followed))
    if followed:
        assert [p.direction for p in passages] == ["out"], passages
        assert abs(passages[0].frame - 127) <= 3, passages
    else:
        assert passages == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_blob_with_area_of_two_but_width_of_one_is_one_person(seed: int) -> None:
    """Three people alone teach the scene one person's size (20 x 60 px);
    then one whose blob is half as tall again (a shadow or a long coat
    below them: the area of 1.7 people, the width of one) walks out: one
    passage, not two."""
    walkers = [(25, 160.0, 0), (140, 130.0, 0), (255, 190.0, 0), (370, 160.0, 40)]

    def draw(image: Canvas, i: int) -> None:
        for start, x, tail in walkers:
            if i >= start:
                cy = 10.0 + 2.0 * (i - start)
                cv2.rectangle(image, (int(x - 10), int(cy - 30)),
                              (int(x + 10), int(cy + 30 + tail)), 60.0, -1)

    passages = _passages_over(_noisy_frames(seed, 520, draw))
    assert [p.direction for p in passages] == ["out"] * 4, passages
    assert len({p.track for p in passages}) == 4
    assert passages[-1].frame > 380



@pytest.mark.parametrize("seed", SEEDS)
def test_a_blob_two_people_wide_and_twice_as_tall_is_one_person(seed: int) -> None:
    """Three people alone teach the scene one person's size (20 x 60 px); then
    a blob twice as wide and twice as tall, whole in the picture from its first
    frame, walks out (someone merged with what stands behind them in depth: a
    door leaf, sunlight on the step, the crush queueing at a bus door seen from
    the ceiling): people abreast are one person tall, so its area and width
    count no second person. (Rigid rectangles: the view is learned as from
    above, the floor point is the centre; the line is at y = 144.)"""
    walkers = [(25, 160.0, 10, 0, 10.0), (140, 130.0, 10, 0, 10.0), (255, 190.0, 10, 0, 10.0),
               (370, 160.0, 20, 60, 92.0)]

    def draw(image: Canvas, i: int) -> None:
        for start, x, half, tail, top in walkers:
            if i >= start:
                cy = top + 2.0 * (i - start)
                cv2.rectangle(image, (int(x - half), int(cy - 30 - tail)),
                              (int(x + half), int(cy + 30)), 60.0, -1)

    scene = Scene(threshold=((60 / 320, 0.6), (260 / 320, 0.6)), inside_point=(0.5, 0.25))
    analyzer = DoorwayAnalyzer(scene, 25.0)
    passages: list[Passage] = []
    for i, gray in enumerate(_noisy_frames(seed, 520, draw)):
        passages += analyzer.feed(Frame(i, i / 25.0, gray))
    passages += analyzer.finish()
    assert [p.direction for p in passages] == ["out"] * 4, passages
    assert passages[-1].frame > 370

def _lost_and_found(seed: int) -> list[GrayImage]:
    """A person (20 x 60 px) walks down 1 px a frame, sidesteps 5 px a frame
    (frames 105-120), is hidden for 12 frames just before the line (their
    track coasts off sideways on the sidestep's velocity) and reappears
    where they were hidden, just past the line, walking on."""
    def draw(image: Canvas, i: int) -> None:
        if i >= 25 and not 120 < i < 133:
            cy = 10.0 + (i - 25)
            x = 100.0 + 5.0 * min(max(0, i - 105), 15)
            cv2.rectangle(image, (int(x - 10), int(cy - 30)), (int(x + 10), int(cy + 30)),
                          60.0, -1)

    return _noisy_frames(seed, 230, draw)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_track_starting_where_one_was_just_lost_continues_it(seed: int) -> None:
    """The new track starts on the far side of the line, so on its own it
    never crossed; as the lost track's continuation it crossed (frame 127)."""
    passages = _passages_over(_lost_and_found(seed))
    assert [p.direction for p in passages] == ["out"], passages
    assert abs(passages[0].frame - 127) <= 3, passages



def _household_leaving(seed: int, minutes: float) -> Scenario:
    """``agent.simulation.CameraHousehold`` with every opening an exit (the crossing
    bench): a gap (mean 2 s), the door open 5.6 s with a 4 s walk out, 1 s quiet."""
    rng = random.Random(seed)
    actions: list[DoorOpen | Walk] = []
    t = rng.expovariate(1 / 2.0)
    while t < minutes * 60.0:
        actions += [DoorOpen(t, 5.6), Walk("exit", t + 0.8, side=rng.choice((-1, 1)))]
        t += 5.6 + 1.0 + rng.expovariate(1 / 2.0)
    return Scenario(tuple(actions), t)


@pytest.mark.slow
def test_exits_are_still_found_after_minutes_of_exits() -> None:
    """An occupant who keeps leaving, for minutes. Once the corridor has taught one
    person's size, that size must not be lent to the doorway rows, where a person
    is a third as tall: borrowed, it made everyone seen through the doorway a
    fragment that decides no side, and after ~4 minutes (32 exits) every exit was
    lost, the episode looking like a handover (bench.crossing, session 6)."""
    source = SyntheticSource(_household_leaving(7, 7.0), seed=0)
    passages, _ = _analysed(source)
    expected = source.expected_passages()
    assert len(expected) > 45
    missed = [round(e.t) for e in expected
              if not any(p.direction == "out" and abs(p.frame - e.frame) <= source.fps
                         for p in passages)]
    assert missed == []
    assert _same(passages, expected)


@pytest.mark.slow
def test_exits_are_still_found_when_frames_are_dropped() -> None:
    """The device drops frames when analysis falls behind (agent/camera.py's full
    queue), here every fifth. The camera's view (feet or centre as the floor point)
    must still be learned from how people walk: it was learned only from windows
    of exactly one second without a missing frame, so it never was; the floor
    point then came from the blob's shape, a walker with their shadow was placed
    a third of their height above their feet, in the doorway's band, and taught
    it the corridor's person size: after half a minute every exit was lost, the
    episode looking like a handover (bench.crossing 30 under load, session 8)."""
    source = SyntheticSource(_household_leaving(7, 1.0), seed=0)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        if frame.index % 5 != 4:
            passages += analyzer.feed(frame)
    passages += analyzer.finish()
    expected = source.expected_passages()
    assert len(expected) > 6
    assert analyzer.view_slope is not None
    assert abs(analyzer.view_slope) < 0.2  # a camera facing the door: heads stay put
    assert _same(passages, expected), [p.frame for p in passages]


@pytest.mark.parametrize("seed", SEEDS)
def test_people_walking_past_do_not_hide_the_doorway(seed: int) -> None:
    """Passers-by along the corridor teach one person's size there (close to the
    camera, big); people then going out or in through the door (a third as tall
    in the doorway) are still followed from the side they came from."""
    walks = tuple(Walk("pass", 1.0 + 5.0 * k, side=1 if k % 2 else -1) for k in range(4))
    people = (person("exit", 21.0) + person("entry", 29.0, side=1, shade=70)
              + person("exit", 37.0, side=-1))
    source = SyntheticSource(Scenario(walks + people, 47.0), seed=seed)
    passages, analyzer = _analysed(source)
    assert analyzer._people is not None
    assert analyzer._people.at(0.78 * 240) is not None  # the corridor was learned
    assert _same(passages, source.expected_passages())


def _legs_hidden(seed: int, hidden: range) -> list[GrayImage]:
    """A person (20 x 80 px) walks along the line 2 px a frame, their feet
    22 px outside it (y = 142, the line at y = 120); on the frames of
    ``hidden`` their lower 30 px are behind something the floor's colour
    (a panel, a parked pram): the blob's bottom jumps 8 px inside the line."""
    def draw(image: Canvas, i: int) -> None:
        if i >= 10:
            x = 30.0 + 2.0 * (i - 10)
            bottom = 112.0 if i in hidden else 142.0
            cv2.rectangle(image, (int(x - 10), 62), (int(x + 10), int(bottom)), 60.0, -1)

    return _noisy_frames(seed, 140, draw)


@pytest.mark.parametrize("seed", SEEDS)
def test_legs_hidden_for_a_moment_are_no_crossing(seed: int) -> None:
    """The blob's bottom, its floor point, jumps over the line in one frame
    when the legs are hidden, which no walk does; the crossing that jump
    decides waits ``band_settle_time`` (not ``settle_time``) on the new
    side, and the legs are back before that: no passage (the CAVIAR woman
    behind the 'promod' panel, reported 27 frames before her real crossing)."""
    passages = _passages_over(_legs_hidden(seed, range(70, 80)))
    assert passages == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_crossing_on_a_jump_is_still_reported(seed: int) -> None:
    """Someone walks away from a camera facing the door, slantwise (their head
    stays at y = 62, their feet go up the picture half a pixel a frame while
    they move 1 px a frame to the right) and in over
    the line (y = 120) at frame 120; their legs go behind something when
    their feet are 8 px before it (frame 104): the floor point jumps 12 px
    past the line. They walk on inside, legs hidden: one passage in,
    reported once they stayed inside for ``band_settle_time``, dated at the
    jump."""
    def draw(image: Canvas, i: int) -> None:
        if i >= 20:
            feet = 170.0 - 0.5 * (i - 20)
            bottom = feet - 20.0 if feet <= 128.0 else feet
            x = 60 + (i - 20)
            cv2.rectangle(image, (x, 62), (x + 20, int(bottom)), 60.0, -1)

    passages = _passages_over(_noisy_frames(seed, 200, draw))
    assert [p.direction for p in passages] == ["in"], passages
    assert abs(passages[0].frame - 104) <= 3, passages

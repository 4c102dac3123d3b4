"""The failure classes of issue 14, reproduced on the synthetic corridor.

Cases marked ``xfail(strict=True)`` fail today for the stated reason (a
known weakness written down as a test); the strict mark makes the suite fail
as soon as one passes, so the mark gets removed with the fix.
"""

from __future__ import annotations

import pytest

from sensors.analyzer import DoorwayAnalyzer, Passage
from sensors.source_synthetic import (
    DoorOpen,
    ExpectedPassage,
    Scenario,
    SyntheticSource,
    Walk,
    person,
)


def _run(scenario: Scenario, seed: int) -> tuple[list[Passage], list[ExpectedPassage]]:
    source = SyntheticSource(scenario, seed=seed)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        passages += analyzer.feed(frame)
    passages += analyzer.finish()
    return sorted(passages, key=lambda p: p.frame), source.expected_passages()


def _opposite(offset: float) -> Scenario:
    """One resident leaves alone first (the scene learns one person's size), then a
    resident leaves while a visitor comes in through the same door, ``offset``
    seconds apart at the sill, side by side in the doorway."""
    return Scenario((
        *person("exit", 1.0),
        *person("exit", 7.0, lane=-0.05),
        # An entry's feet reach the sill 2.2 s after it starts, an exit's 1.8 s.
        Walk("entry", 7.0 - 0.4 + offset, lane=0.05, side=1, shade=90),
    ), 14.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offset", [0.0, 0.3])
@pytest.mark.xfail(strict=True, reason=(
    "class 2 of issue 14: seen from the corridor the visitor in front of the door "
    "hides the resident in the doorway, so both are one blob from ~0.9 s before "
    "the sill to ~1.2 s after. The resident's track is lost in the merge (first "
    "with the door-leaf ghost, then with the visitor); the visitor's track keeps "
    "the union and follows its bottom, which is the resident's feet once the two "
    "pass at the sill, so it never crosses; the visitor, behind the resident from "
    "then on, is never seen alone again. Result: neither crossing is reported "
    "(keeping both identities through the merge was tried in session 8: it "
    "recovers the exit, not the entry; BENCHMARKS.md)"))
def test_opposite_crossings_at_the_same_moment_give_one_passage_each(
    offset: float, seed: int
) -> None:
    passages, expected = _run(_opposite(offset), seed)
    assert len(passages) == len(expected), (passages, expected)
    for p, e in zip(passages, sorted(expected, key=lambda e: e.frame), strict=True):
        assert p.direction == e.direction, (passages, expected)
        assert abs(p.frame - e.frame) <= 25, (passages, expected)


def test_the_first_resident_alone_is_counted_once() -> None:
    """The opening of the scenario above on its own: the baseline the xfail relies on."""
    scenario = Scenario(person("exit", 1.0), 7.0)
    passages, expected = _run(scenario, 0)
    assert [(p.direction, abs(p.frame - e.frame) <= 25)
            for p, e in zip(passages, expected, strict=True)] == [("out", True)]


def _expected_in_video(expected: list[ExpectedPassage]) -> list[ExpectedPassage]:
    """Crossings the script places before the first frame are not in the video."""
    return sorted((e for e in expected if e.frame >= 0), key=lambda e: e.frame)


def _matches(passages: list[Passage], expected: list[ExpectedPassage]) -> bool:
    return len(passages) == len(expected) and all(
        p.direction == e.direction and abs(p.frame - e.frame) <= 25
        for p, e in zip(passages, expected, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_someone_in_the_doorway_at_the_start_adds_no_passage_later(seed: int) -> None:
    """Class 3 of issue 14: the recording starts with the door open and someone
    at the sill, who goes back in; later a resident leaves. The background was
    learned with the open door, so the leaf swinging shut and open again is
    foreground and the resident's blob takes the leaf along; when they part,
    the leaf left standing on the sill inherited the resident's side and used
    to "cross back" in 1.2 s after the exit (seeds 0 and 2)."""
    scenario = Scenario((DoorOpen(-1.0, 6.0), Walk("handover", -1.2, duration=4.0),
                         *person("exit", 6.0)), 12.0)
    passages, expected = _run(scenario, seed)
    assert _matches(passages, _expected_in_video(expected)), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_someone_who_came_in_before_the_start_adds_no_passage_later(seed: int) -> None:
    """Class 3 of issue 14: a visitor crossed in just before the recording began
    (the door still open, the visitor walking on inside); a resident leaving
    later is one passage, not an exit and a false entry."""
    scenario = Scenario((DoorOpen(-1.0, 6.0), Walk("entry", -2.3, duration=4.0),
                         *person("exit", 6.0)), 12.0)
    passages, expected = _run(scenario, seed)
    assert _matches(passages, _expected_in_video(expected)), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_someone_crossing_in_as_the_recording_starts_then_a_resident_leaves(
    seed: int,
) -> None:
    """Class 3 of issue 14: the background is learned from a first frame with
    the visitor on the sill, so their imprint stays foreground where they
    stood (a ghost). Its track had walked (it took over the visitor's
    fragments), so it was protected from static absorption for good, and the
    resident leaving 7.8 s later merged with it: one compact blob whose floor
    point stayed inside until it parted (seed 1: the exit dated 1.2 s late).
    A still track whose outline is an edge of the background rather than of
    the picture is a ghost and is let go; the entry it took over is reported
    as it ends."""
    scenario = Scenario((DoorOpen(-1.0, 6.0), Walk("entry", -2.0, duration=4.0),
                         *person("exit", 6.0)), 12.0)
    passages, expected = _run(scenario, seed)
    assert _matches(passages, _expected_in_video(expected)), (passages, expected)


@pytest.mark.parametrize(("seed", "every"), [(0, 4), (1, 4), (0, 3), (1, 3)])
def test_a_ghost_is_let_go_when_frames_are_dropped(seed: int, every: int) -> None:
    """The same scene on a device that drops every ``every``-th frame because
    analysis falls behind (agent/camera.py). The ghost check asked for a box
    still over exactly k consecutive frames, so the ghost was never let go:
    the resident's exit came 2.8 s early (every 4th dropped) or not at all
    (every 3rd). The entry at the very start is not asserted here: with a third
    of the frames gone it is lost or dated late (left for later, session 8)."""
    scenario = Scenario((DoorOpen(-1.0, 6.0), Walk("entry", -2.0, duration=4.0),
                         *person("exit", 6.0)), 12.0)
    source = SyntheticSource(scenario, seed=seed)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    passages: list[Passage] = []
    while (frame := source.read()) is not None:
        if frame.index % every != every - 1:
            passages += analyzer.feed(frame)
    passages += analyzer.finish()
    exits = [p for p in passages if p.direction == "out"]
    expected = [e for e in _expected_in_video(source.expected_passages())
                if e.direction == "out"]
    assert _matches(exits, expected), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_part_left_in_the_doorway_by_two_people_leaving_does_not_come_back_in(
    seed: int,
) -> None:
    """Class 1 of issue 14 (the person and the door leaf they push): two
    residents leave side by side; when their blob walks on, the part of it
    left standing in the doorway (the opened door, where the background still
    has it shut) parted from a group that was outside, higher in the picture:
    seen from the corridor that is "inside", and it used to inherit the
    group's side and report a false entry 1.4 s after the exit."""
    scenario = Scenario((*person("exit", 1.0, lane=-0.05),
                         Walk("exit", 1.1, lane=0.05, shade=80)), 8.0)
    passages, _ = _run(scenario, seed)
    assert [p.direction for p in passages if p.direction == "in"] == [], passages
    assert any(p.direction == "out" for p in passages), passages


def _returned(scenario: Scenario, seed: int) -> list[tuple[Passage, int]]:
    """Passages with the frame on which ``feed`` (or ``finish``) returned them."""
    source = SyntheticSource(scenario, seed=seed)
    analyzer = DoorwayAnalyzer(source.scene, source.fps)
    found: list[tuple[Passage, int]] = []
    index = 0
    while (frame := source.read()) is not None:
        index = frame.index
        found += [(p, index) for p in analyzer.feed(frame)]
    found += [(p, index + 1) for p in analyzer.finish()]
    return found


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shade", [100, 120])
def test_a_person_whose_legs_vanish_against_the_floor_is_reported_within_a_second(
    shade: int, seed: int
) -> None:
    """Class 4 of issue 14 (early exit needs passages within ~1 s): clothes the
    colour of the floor leave only the upper body as a blob once the person is
    out, its bottom back near the sill; the exit waited for the track to end
    and came 2.6 s after the crossing."""
    source = SyntheticSource(Scenario(person("exit", 1.0, shade=shade), 8.0), seed=seed)
    expected = source.expected_passages()
    found = _returned(Scenario(person("exit", 1.0, shade=shade), 8.0), seed)
    assert [p.direction for p, _ in found] == ["out"], found
    passage, at = found[0]
    assert abs(passage.frame - expected[0].frame) <= 25, found
    assert at - passage.frame <= source.fps, found


@pytest.mark.parametrize("seed", [0, 1])
def test_a_fast_walker_coming_out_of_the_door_is_counted(seed: int) -> None:
    """Class 4 of issue 14: a resident who walks out in 2 s (4 s is the scenes'
    pace) is one blob with the opening door leaf, its bottom on the sill, until
    ~0.2 s before the sill; the person's own track starts only 1.4 side margins
    inside, short of ``origin_depth``, but its path goes on well beyond the line
    (``_through``), so the exit counts."""
    scenario = Scenario(person("exit", 1.0, duration=2.0), 6.0)
    passages, expected = _run(scenario, seed)
    assert _matches(passages, expected), (passages, expected)


# Class 5 of issue 14: what moves in the doorway without crossing it as a
# person does: a house cat running out over the sill and back, someone walking
# across the room behind the open door, someone who comes towards the door and
# turns back before the sill. None is a passage; the residents' own exit and
# entry in the same recording still are.

def _cat(at: float, side: int = 1) -> tuple[DoorOpen, Walk]:
    """The door opens and a cat runs out over the sill and straight back in (2.5 s)."""
    cat = Walk("cat", at, duration=2.5, side=side, shade=45)
    return DoorOpen(at - 0.8, cat.duration + 1.6), cat


def test_the_class_5_walks_are_no_passages_in_the_script() -> None:
    scenario = Scenario((*_cat(1.0), DoorOpen(5.0, 4.0), Walk("room", 5.5, duration=3.0),
                         *person("turn", 10.0)), 15.0)
    assert SyntheticSource(scenario).expected_passages() == []


def _confident(passages: list[Passage]) -> list[Passage]:
    """What the agent counts (``min_passage_confidence``, 0.5 by default)."""
    return [p for p in passages if p.confidence >= 0.5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cat_once_one_persons_size_is_known_counts_nothing(seed: int) -> None:
    """Three walks (the size model answers once three tracks walked alone),
    then the cat: its blob, a quarter of a person's height and a third of
    their area at the sill, is a fragment there and decides no side."""
    scenario = Scenario((*person("exit", 1.0), *person("entry", 6.0, shade=70),
                         *person("exit", 11.0, side=-1, shade=60), *_cat(16.0)), 20.0)
    passages, expected = _run(scenario, seed)
    assert _matches(passages, expected), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cat_after_one_resident_is_not_counted(seed: int) -> None:
    """One resident goes out and comes back (not yet the three walkers the size
    model waits for), then the cat runs out over the sill and back. Its run
    used to be an exit at confidence ~0.8 (by two tracks: the cat and a sliver
    of the door leaf beside it; its side margin 0.6 of its own height, 3 px).
    Measured against the provisional person learned from the resident alone
    it is under half their height there: reported at low confidence at most,
    which the agent does not count (``min_passage_confidence`` 0.5); the
    resident's crossings are counted."""
    actions = (*person("exit", 1.0), *person("entry", 6.0, shade=70), *_cat(11.0))
    passages, expected = _run(Scenario(actions, 15.0), seed)
    assert _matches(_confident(passages), expected), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.xfail(strict=True, reason=(
    "class 5 of issue 14: a cat before anyone has walked through the picture. "
    "Nothing known yet gives a person's size: the threshold line is no door width "
    "on the corpus (shop entrances, lobbies: people at the line are 0.15-0.6 of "
    "its length), so capping the confidence of blobs under half the line lost 17 "
    "of 50 confident true passages on the tuning split; a low, long shape "
    "(height/width under 1.2) lost 3 and missed the door-leaf sliver reported "
    "beside the cat (tall, narrow). The cat's run out is an exit at ~0.8 "
    "(session 9, bench/NOTES.md)"))
def test_a_cat_before_anyone_was_seen_is_not_counted(seed: int) -> None:
    """The cat first, then a resident goes out and comes back: the residents'
    crossings are counted, the cat's are not counted by the agent."""
    actions = (*_cat(1.0), *person("exit", 5.0), *person("entry", 10.0, shade=70))
    passages, expected = _run(Scenario(actions, 15.0), seed)
    assert _matches(_confident(passages), expected), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("first", [True, False])
def test_someone_walking_across_the_room_behind_the_door_counts_nothing(
    first: bool, seed: int
) -> None:
    """Seen through the open door, someone crosses the room beyond it
    sideways, feet well inside (a person height of 0.16 of the picture there,
    less than half of one at the sill); before and after the resident's exit
    and entry."""
    room = (DoorOpen(0.5 if first else 11.0, 5.0), Walk("room", 1.0 if first else 11.5,
                                                         duration=3.0))
    at = 6.0 if first else 1.0
    actions = (*room, *person("exit", at), *person("entry", at + 5.0, shade=70))
    passages, expected = _run(Scenario(actions, 17.0), seed)
    assert _matches(passages, expected), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("first", [True, False])
def test_someone_who_turns_back_before_the_sill_counts_nothing(first: bool, seed: int) -> None:
    """Someone walks up towards the open door from inside and turns back, without
    stopping, 0.06 of the picture short of the sill: inside the line's band
    (a side margin there is ~0.07) but never over it; before and after the
    resident's exit and entry."""
    at = 6.0 if first else 1.0
    actions = (*person("turn", 1.0 if first else 11.5), *person("exit", at),
               *person("entry", at + 5.0, shade=70))
    passages, expected = _run(Scenario(actions, 17.0), seed)
    assert _matches(passages, expected), (passages, expected)

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
def test_opposite_crossings_at_the_same_moment_give_one_passage_each(
    offset: float, seed: int
) -> None:
    """Class 2 of issue 14. Seen from the corridor the visitor in front of the
    door and the resident in the doorway are one blob from ~0.9 s before the
    sill to ~1.2 s after; the resident's track is lost in the merge, and the
    track that keeps the blob (the visitor's, or the door leaf's ghost's that
    took it over) follows its bottom: the visitor's feet up to the sill, then
    the resident's going away. That track's floor point came into the band and
    went back out where the resident was along the line, not where the visitor
    came from: both crossed (:mod:`sensors.opposite`). Each is reported within
    1 s of its crossing."""
    source = SyntheticSource(_opposite(offset), seed=seed)
    expected = source.expected_passages()
    found = _returned(_opposite(offset), seed)
    passages = [p for p, _ in found]
    for direction in ("out", "in"):
        want = sorted(e.frame for e in expected if e.direction == direction)
        got = sorted((p.frame, at) for p, at in found if p.direction == direction)
        assert len(got) == len(want), (passages, expected)
        for (frame, at), e in zip(got, want, strict=True):
            assert abs(frame - e) <= 25, (passages, expected)
            assert at - e <= source.fps, (found, expected)


def _opposite_variant(offset: float, lanes: tuple[float, float], side: int) -> Scenario:
    """:func:`_opposite` with other timings, lanes and the visitor's side of approach."""
    return Scenario((
        *person("exit", 1.0),
        *person("exit", 7.0, lane=lanes[0]),
        Walk("entry", 7.0 - 0.4 + offset, lane=lanes[1], side=side, shade=90),
    ), 14.0)


@pytest.mark.parametrize(("offset", "lanes", "side"), [
    pytest.param(-0.3, (-0.05, 0.05), 1, marks=pytest.mark.xfail(strict=True, reason=(
        "the resident is lost into the door leaf ghost's blob before meeting the "
        "visitor; that track has no side, so nothing notes the resident as merged "
        "into a blob from the other side, and the ghost's track carries both"))),
    pytest.param(0.6, (-0.05, 0.05), 1, marks=pytest.mark.xfail(strict=True, reason=(
        "the resident's feet go lower in the picture than the visitor's before the "
        "visitor's reach the band: the merged blob's floor point turns back short "
        "of the band, never in it (deciding on any such turn instead was "
        "tried: it took a visitor calling at the door for an exit and an entry)"))),
    pytest.param(0.0, (0.05, -0.05), 1, marks=pytest.mark.xfail(strict=True, reason=(
        "the resident never has a track of their own: one blob with the door leaf's "
        "ghost from the moment they appear in the doorway, carried out by the ghost's "
        "track, which has no side to have crossed from (the entry is found)"))),
    pytest.param(0.0, (-0.05, 0.05), -1, marks=pytest.mark.xfail(strict=True, reason=(
        "the resident is lost into the door leaf ghost's blob (a track with no side) "
        "before the visitor's track takes that blob over, so nothing notes the "
        "resident as merged into a blob from the other side"))),
])
def test_opposite_crossings_in_other_arrangements(
    offset: float, lanes: tuple[float, float], side: int
) -> None:
    """Class 2 in other arrangements (seed 0): the visitor 0.3 s early or 0.6 s
    late at the sill, the resident in the right lane, the visitor from the
    left. All four fail, before sensors.opposite and after; what it decides
    from needs the resident's own track to be lost into the visitor's blob
    close to the line, and the merged blob's floor point to pass through the
    band."""
    passages, expected = _run(_opposite_variant(offset, lanes, side), 0)
    assert len(passages) == len(expected), (passages, expected)
    for direction in ("out", "in"):
        got = sorted(p.frame for p in passages if p.direction == direction)
        want = sorted(e.frame for e in expected if e.direction == direction)
        assert len(got) == len(want), (passages, expected)
        assert all(abs(g - w) <= 25 for g, w in zip(got, want, strict=True)), (passages, expected)


def _doorstep(offset: float, lanes: tuple[float, float], wait: float) -> Scenario:
    """One resident leaves alone first (the scene learns one person's size), then
    a resident comes to the door and stands in the doorway for ``wait`` seconds
    while a visitor (``offset`` seconds later) comes up to the sill from the
    corridor, waits there a second and goes back: nobody crosses."""
    return Scenario((
        *person("exit", 1.0),
        *person("handover", 7.0, duration=wait, lane=lanes[0]),
        Walk("call", 7.0 + offset, duration=5.0, lane=lanes[1], shade=90),
    ), 15.0)


_UNCONFIRMED = pytest.mark.xfail(strict=True, reason=(
    "the resident in the doorway was one blob with the door leaf's ghost until two "
    "frames before merging with the visitor, so their own track was never confirmed "
    "and nothing notes them as merged into the visitor's blob; when the blob parts "
    "the visitor's track takes the resident's part inside and 'crosses in' by a jump"))


@pytest.mark.parametrize(("offset", "lanes", "wait", "seed"), [
    (0.0, (-0.05, 0.05), 5.0, 0), (0.0, (-0.05, 0.05), 5.0, 1), (0.0, (-0.05, 0.05), 5.0, 2),
    (-0.5, (-0.05, 0.05), 5.0, 0), (-0.5, (-0.05, 0.05), 5.0, 1),
    (0.5, (-0.05, 0.05), 5.0, 1), (0.5, (-0.05, 0.05), 5.0, 2),
    (0.0, (0.05, -0.05), 5.0, 0), (-1.0, (-0.05, 0.05), 7.0, 0),
    # Lanes closer than a person's width: the visitor standing at the band's
    # edge must not be taken for someone walking away.
    (0.0, (-0.03, 0.03), 5.0, 0), (0.0, (-0.03, 0.03), 5.0, 1),
    pytest.param(-1.0, (0.0, 0.08), 7.0, 0, marks=_UNCONFIRMED),
])
def test_a_visitor_calling_while_the_resident_stands_in_the_doorway_is_no_crossing(
    offset: float, lanes: tuple[float, float], wait: float, seed: int
) -> None:
    """The opposite of class 2: both come up to the line from either side, their
    blobs merge, and each goes back where they came from. The floor point of
    the track that keeps the blob comes into the band and goes back out, as
    with two people passing; but it goes back in the visitor's own lane, and
    only once the visitor walks away (standing at the band's edge is not
    going back out). Before sensors.opposite, six of these eleven passing
    cases gave a false passage: the track that kept the merged blob had its
    floor point jump over the line to the other person's feet (the resident's
    track onto the visitor's: three false exits, a breach) or took the other
    person's part when the blob parted; that is now the track following the
    other person, not a crossing."""
    passages, expected = _run(_doorstep(offset, lanes, wait), seed)
    assert _matches(passages, expected), (passages, expected)


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


def _standing_at_start(kind: str, start: float, duration: float, door: bool) -> Scenario:
    """Someone already standing at the sill when the recording starts (a visitor
    ``call``ing just outside, a resident at the ``handover`` just inside), who
    then walks back the way they came; a resident leaves at 7 s."""
    walk = Walk(kind, start, duration=duration, shade=90 if kind == "call" else 50)  # type: ignore[arg-type]
    actions: tuple[DoorOpen | Walk, ...] = (walk,)
    if door:
        actions = (DoorOpen(start - 0.5, duration + 1.0), walk)
    return Scenario((*actions, *person("exit", 7.0)), 13.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_visitor_standing_at_the_sill_at_the_start_adds_no_passage(seed: int) -> None:
    """Class 3 of issue 14: the first frame has a visitor standing just outside
    the sill (the door shut), who walks away towards the camera 0.8 s later.
    The background holds them; their imprint and they are one wide blob,
    anchored by its shape (no view learned yet) at its middle, inside the
    line; once the view is learned the anchor drops to the blob's feet,
    outside: that used to be a false exit at 1.6 s. Two rules now hold it
    back, each alone: the track began in place where nothing had moved since
    the first picture (a *stander*), and its box on its last frame clearly
    inside, anchored as now, was no longer clearly inside: the reference point
    moved, nobody crossed (``DoorwayAnalyzer._reanchored``); and the floor
    point passes the line beyond its end as the visitor walks off along the
    corridor (``AnalyzerConfig.cross_inset``, session 11). The resident leaving
    later is the only passage."""
    passages, expected = _run(_standing_at_start("call", -4.0, 8.0, door=False), seed)
    assert _matches(passages, _expected_in_video(expected)), (passages, expected)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_resident_in_the_doorway_at_the_start_does_not_hide_a_later_exit(seed: int) -> None:
    """Class 3 of issue 14, the other way: a resident stands just inside the open
    door in the first frame and goes back in 1 s later. Their imprint stayed
    foreground under the boxes of the tracks that walked out of it (protected:
    they had walked) and merged with the resident leaving 6 s later: that exit
    was lost. A stander's track that stands still on a ghost (its outline an
    edge of the background, not of the picture) with nobody near has its
    imprint released into the background at once."""
    passages, expected = _run(_standing_at_start("handover", -5.0, 10.0, door=True), seed)
    assert _matches(passages, _expected_in_video(expected)), (passages, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_visitor_leaving_the_open_door_at_the_start_adds_no_passage(seed: int) -> None:
    """Class 3 of issue 14: a visitor at the open door in the first picture
    walks away at once. The track left on their imprint stands still on a
    ghost; when the imprint's blob breaks up (its shadow parting from its
    body) the box jumps up over the line: that used to be a false entry at
    1.8-3.6 s. A track standing on a ghost decides no side change."""
    passages, expected = _run(_standing_at_start("call", -6.0, 9.0, door=True), seed)
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

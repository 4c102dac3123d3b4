"""The analyzer on a door seen from inside (issue 14 class 1): citybus_door_b,
and a synthetic door leaf.

citybus_door_b is a local-only tuning clip (tests/corpus/labels.json: no
licence, never under shared/), so its tests run only where
DOORWATCH_CORPUS_DIR holds a copy and skip elsewhere, CI included
(``need("corpus", ...)``, not required there).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from firmware_config.scene import Scene
from sensors.analyzer import DoorwayAnalyzer, Passage
from sensors.corpus import collect
from sensors.evaluate import Score, match
from sensors.frames import Frame
from sensors.source_opencv import OpenCVSource
from tests.paths import REPO_ROOT
from tests.requirements import need

LABELS = REPO_ROOT / "tests" / "corpus" / "labels.json"
CLIP = "citybus_door_b.mp4"


@pytest.fixture(scope="module")
def bus_door() -> tuple[list[Passage], Score]:
    """The analyzer's passages over citybus_door_b, and their score against its labels."""
    collected = collect([LABELS])
    found = {c.name: c for c in collected.clips}
    need("corpus", CLIP in found, f"{CLIP} is local only: set DOORWATCH_CORPUS_DIR to a copy")
    clip = found[CLIP]
    analyzer = DoorwayAnalyzer(clip.labels.scene, clip.labels.fps)
    passages: list[Passage] = []
    with OpenCVSource(clip.video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            passages += analyzer.feed(frame)
    passages += analyzer.finish()
    return passages, match(passages, clip.labels.events, clip.labels.fps)


def test_blobs_seen_only_briefly_at_their_crossing_are_not_recounted(
    bus_door: tuple[list[Passage], Score],
) -> None:
    """The leaves opening into sunlight, the exposure swinging with them and
    tracks re-associated across the picture make blobs of 1-4 frames at
    their crossings, up to the whole picture; measured against one person's
    size learned later, they were "recounted" as 2-4 people each (15 of the
    clip's 25 false passages at b71e7c1). Nobody here walks out abreast."""
    passages, score = bus_door
    extra = [p for p in passages if p.track < 0]
    assert extra == [], extra
    assert score.tp >= 4, score


def test_no_crossing_is_counted_at_the_ends_of_the_doorway(
    bus_door: tuple[list[Passage], Score],
) -> None:
    """Five of the clip's ten false passages at 28dfbd9 crossed the line
    within 5 % of its length from an end or beyond it (the left leaf folding
    in at its hinge, a second track on the girl at the frame, blobs coasting
    along the door frame as the leaves shut); nobody walks through a door with
    their centre at the jamb (``AnalyzerConfig.cross_inset``, session 11)."""
    passages, score = bus_door
    assert score.tp >= 4, score
    assert score.fp <= 5, (score, passages)


def _leaf(seed: int, fps: float = 25.0) -> Iterator[Frame]:
    """A door leaf seen from inside, swinging towards the camera: a panel
    60 px wide whose image grows down from the picture's top edge, slowly
    (4 px a frame for half a second) and then fast (60 px a frame, no body
    grows that fast) to well over the threshold, where it stays open."""
    rng = np.random.default_rng(seed)
    width, height = 320, 240
    background = np.clip(rng.normal(110, 6, (height, width)), 0, 255).astype(np.float32)
    texture = np.clip(rng.normal(0, 10, (height, width)), -30, 30).astype(np.float32)
    bottoms: list[float | None] = [None] * 20
    bottom = 0.0
    for _ in range(12):
        bottom += 4.0
        bottoms.append(bottom)
    while bottom < 220.0:
        bottom = min(220.0, bottom + 60.0)
        bottoms.append(bottom)
    bottoms += [bottom] * 40
    for index, edge in enumerate(bottoms):
        image = background.copy()
        if edge is not None:
            rows = int(edge)
            image[:rows, 100:160] = 190.0 + texture[:rows, 100:160]
        image += rng.normal(0, 2, image.shape)
        yield Frame(index=index, t=index / fps,
                    gray=np.clip(image, 0, 255).astype(np.uint8))


@pytest.mark.xfail(strict=True, reason="issue 14 (session 11, leaves): the leaf's blob "
                   "is tracked as it grows over the line and its floor point is taken "
                   "for someone's feet; nothing yet tells a leaf from a body")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_door_leaf_growing_from_the_picture_edge_over_the_line_is_no_passage(
    seed: int,
) -> None:
    """Door leaves are in every door scene seen from inside (a flat's door
    swings into the room): a region growing from a fixed edge at the picture's
    border much faster than anyone moves is no one crossing. Today it reports
    an entry (the box grows over the line, then the floor point follows the
    box's elongation from its centre to its bottom)."""
    scene = Scene(threshold=((0.1, 0.625), (0.9, 0.625)), inside_point=(0.5, 0.9))
    analyzer = DoorwayAnalyzer(scene, 25.0)
    passages: list[Passage] = []
    for frame in _leaf(seed):
        passages += analyzer.feed(frame)
    passages += analyzer.finish()
    assert passages == [], passages

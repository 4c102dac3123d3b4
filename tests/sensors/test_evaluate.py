"""Matching passages to labels: direction, ±1 s, one-to-one, ambiguous labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ground.errors import ConfigError
from sensors.analyzer import Passage
from sensors.evaluate import Label, Score, load_labels, match


def _p(frame: int, direction: str = "out") -> Passage:
    return Passage(frame=frame, t=frame / 25, direction=direction, track=1, confidence=1.0)  # type: ignore[arg-type]


def test_match_within_one_second_same_direction() -> None:
    labels = [Label(frame=100, direction="out"), Label(frame=300, direction="in")]
    score = match([_p(120), _p(300, "out"), _p(326, "in")], labels, fps=25)
    assert score == Score(tp=1, fp=2, fn=1)


def test_each_label_matches_one_passage_only() -> None:
    score = match([_p(100), _p(101)], [Label(frame=100, direction="out")], fps=25)
    assert (score.tp, score.fp, score.fn) == (1, 1, 0)


def test_ambiguous_labels_are_neither_required_nor_penalized() -> None:
    labels = [Label(frame=100, direction="out", ambiguous=True),
              Label(frame=400, direction="out", ambiguous=True)]
    score = match([_p(105)], labels, fps=25)
    assert score == Score(tp=0, fp=0, fn=0)


def test_metrics() -> None:
    score = Score(tp=3, fp=1, fn=2)
    assert score.precision == pytest.approx(0.75)
    assert score.recall == pytest.approx(0.6)
    assert score.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert (score + Score(tp=1)).tp == 4


def test_bad_labels_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"clips": {"a.mp4": {"fps": 25, "scene": {}, "events": []}}}))
    with pytest.raises(ConfigError) as info:
        load_labels(path)
    assert info.value.field is not None
    assert "scene" in info.value.field

"""The Scene model and its TOML loader: good files load, bad ones name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from firmware_config.scene import Scene, load_scene
from ground.errors import ConfigError

GOOD = {"threshold": [[0.2, 0.5], [0.8, 0.5]], "inside_point": [0.5, 0.3]}


def test_valid_scene_orients_the_normal_outwards() -> None:
    line = Scene.model_validate(GOOD).in_pixels(100, 100)
    assert line.signed_distance(50, 30) < 0  # inside point side
    assert line.signed_distance(50, 70) > 0
    assert line.along(20, 50) == pytest.approx(0.0)
    assert line.along(80, 50) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": [[0.2, 0.5], [1.2, 0.5]]}, "within 0..1"),
        ({"inside_point": [0.5, -0.1]}, "within 0..1"),
        ({"threshold": [[0.5, 0.5], [0.505, 0.5]]}, "too short"),
        ({"inside_point": [0.5, 0.5]}, "lies on the threshold"),
        ({"threshold": [[0.2, 0.5]]}, "Field required"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_scenes_are_rejected(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Scene.model_validate({**GOOD, **change})


def test_load_scene_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "scene.toml"
    path.write_text("threshold = [[0.2, 0.5], [0.8, 0.5]]\ninside_point = [0.5, 0.3]\n")
    assert load_scene(path).inside_point == (0.5, 0.3)


def test_load_scene_accepts_a_scene_table(tmp_path: Path) -> None:
    path = tmp_path / "device.toml"
    path.write_text("[scene]\nthreshold = [[0.2, 0.5], [0.8, 0.5]]\ninside_point = [0.5, 0.7]\n")
    assert load_scene(path).inside_point == (0.5, 0.7)


def test_load_scene_error_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "scene.toml"
    path.write_text("threshold = [[0.2, 0.5], [0.8, 0.5]]\ninside_point = [0.5, 1.5]\n")
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    assert info.value.path == path
    assert info.value.field is not None
    assert str(path) in str(info.value)


def test_load_scene_unknown_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "scene.toml"
    path.write_text(
        "threshold = [[0.2, 0.5], [0.8, 0.5]]\ninside_point = [0.5, 0.3]\nthreshhold = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    assert info.value.field == "threshhold"


def test_load_scene_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_scene(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("threshold = [[")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scene(bad)

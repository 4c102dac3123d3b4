"""The corpus (data/corpus) and the generalization figures over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doorwatch.cli import app
from ground.errors import ConfigError
from sensors.analyzer import Passage
from sensors.corpus import ClipMeta, collect, load_meta, report
from sensors.evaluate import ClipScore, Score, load_labels
from tests.paths import REPO_ROOT, SHARED_DATA
from tests.requirements import need

CORPUS = REPO_ROOT / "tests" / "corpus"
SCENE = {"threshold": [[0.1, 0.5], [0.9, 0.5]], "inside_point": [0.5, 0.2]}


def _labels(tmp_path: Path, clips: dict[str, dict[str, object]]) -> Path:
    (tmp_path / "videos").mkdir(exist_ok=True)
    for name in clips:
        (tmp_path / "videos" / name).write_bytes(b"")
    path = tmp_path / "labels.json"
    entries = {name: {"fps": 25, "scene": SCENE, "events": [], **extra}
               for name, extra in clips.items()}
    path.write_text(json.dumps({"clips": entries}))
    return path


def test_corpus_labels_are_valid_and_every_video_is_there() -> None:
    clips = collect([CORPUS / "labels.json"])
    assert clips, "the corpus lists no clip"
    for clip in clips:
        assert clip.viewpoint != "unspecified", clip.name
        assert clip.labels.frames
        assert clip.labels.width
        assert clip.labels.height
        for event in clip.labels.events:
            assert 0 <= event.frame < clip.labels.frames, (clip.name, event.frame)
    size = sum(p.stat().st_size for p in (CORPUS / "videos").iterdir())
    assert size < 60 * 2**20, f"corpus videos are {size / 2**20:.1f} MiB, the budget is ~60"


def test_shared_metadata_names_only_shared_clips() -> None:
    need("data", (SHARED_DATA / "labels.json").exists(),
         f"the shared labelled clips are not at {SHARED_DATA}")
    meta = load_meta(CORPUS / "shared_clips.json")
    assert set(meta) == set(load_labels(SHARED_DATA / "labels.json").clips)
    # Both files together form one corpus: no clip twice, no scene in both splits.
    clips = collect([SHARED_DATA / "labels.json", CORPUS / "labels.json"], meta)
    assert {c.split for c in clips} <= {"tuning", "validation"}


def test_metadata_overlay_and_defaults(tmp_path: Path) -> None:
    path = _labels(tmp_path, {"a.mp4": {"viewpoint": "front", "scene_id": "door1"}, "b.mp4": {}})
    clips = {c.name: c for c in collect([path], {"b.mp4": ClipMeta(viewpoint="overhead")})}
    assert (clips["a.mp4"].viewpoint, clips["a.mp4"].scene_id, clips["a.mp4"].split) == (
        "front", "door1", "tuning")
    # Not declared kept back: counted as tuning, never as validation; its own scene.
    assert (clips["b.mp4"].viewpoint, clips["b.mp4"].scene_id, clips["b.mp4"].split) == (
        "overhead", "b.mp4", "tuning")


def test_a_scene_belongs_to_one_split(tmp_path: Path) -> None:
    path = _labels(tmp_path, {
        "a.mp4": {"scene_id": "door1", "split": "tuning"},
        "b.mp4": {"scene_id": "door1", "split": "validation"},
    })
    with pytest.raises(ConfigError, match="door1"):
        collect([path])


def test_missing_video_and_duplicate_clip_are_named(tmp_path: Path) -> None:
    path = _labels(tmp_path, {"a.mp4": {}})
    (tmp_path / "videos" / "a.mp4").unlink()
    with pytest.raises(ConfigError, match=r"a\.mp4"):
        collect([path])
    other = tmp_path / "other"
    other.mkdir()
    again = _labels(other, {"c.mp4": {}})
    path = _labels(tmp_path, {"c.mp4": {}})
    with pytest.raises(ConfigError, match="listed twice"):
        collect([path, again])


def _score(name: str, tp: int, fp: int, fn: int, delays: list[int]) -> ClipScore:
    passages = [Passage(frame=10 * i, t=0.4 * i, direction="out", track=i, confidence=0.9)
                for i in range(len(delays))]
    return ClipScore(clip=name, score=Score(tp=tp, fp=fp, fn=fn), passages=passages, frames=100,
                     analysis_fps=1.0, delays=delays, confident=Score(tp=tp, fp=fp, fn=fn))


def test_report_groups_and_holds_each_scene_out(tmp_path: Path) -> None:
    path = _labels(tmp_path, {
        "a.mp4": {"viewpoint": "front", "scene_id": "s1", "split": "tuning"},
        "b.mp4": {"viewpoint": "front", "scene_id": "s1", "split": "tuning"},
        "c.mp4": {"viewpoint": "overhead", "scene_id": "s2", "split": "validation"},
    })
    clips = {c.name: c for c in collect([path])}
    results = [
        (clips["a.mp4"], _score("a.mp4", 4, 0, 0, [5, 5, 5, 5])),
        (clips["b.mp4"], _score("b.mp4", 4, 0, 0, [5, 5, 5, 30])),
        (clips["c.mp4"], _score("c.mp4", 1, 1, 2, [5, 5])),
    ]
    rep = report(results)
    splits = {g.name: g for g in rep.splits}
    assert splits["tuning"].score == Score(tp=8)
    assert splits["validation"].score == Score(tp=1, fp=1, fn=2)
    assert {g.name for g in rep.viewpoints} == {"tuning/front", "validation/overhead"}
    # 30 frames at 25 fps: one passage late against the 1 s budget.
    assert splits["tuning"].late == 1
    assert splits["tuning"].max_delay_s == pytest.approx(1.2)
    held = {h.scene_id: h for h in rep.hold_out}
    assert held["s1"].held_out == Score(tp=8)
    assert held["s1"].rest == Score(tp=1, fp=1, fn=2)
    assert rep.worst_scene == "s2"
    assert rep.macro_f1 == pytest.approx((1.0 + 0.4) / 2)


def test_eval_command_on_a_real_clip(tmp_path: Path) -> None:
    """`doorwatch eval` end to end: one shared clip, its scene given by a metadata file."""
    need("data", (SHARED_DATA / "labels.json").exists(),
         f"the shared labelled clips are not at {SHARED_DATA}")
    shared = json.loads((SHARED_DATA / "labels.json").read_text())
    name = "caviar_OneLeaveShop1front.mpg"
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / name).symlink_to(SHARED_DATA / "videos" / name)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"clips": {name: shared["clips"][name]}}))
    result = CliRunner().invoke(app, ["eval", str(labels), "--meta",
                                      str(CORPUS / "shared_clips.json"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert [g["name"] for g in payload["viewpoints"]] == ["tuning/front"]
    assert payload["splits"][0]["score"]["tp"] == 1
    assert payload["hold_out"][0]["scene_id"] == "caviar_promod_front"

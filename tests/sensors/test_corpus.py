"""The corpus (tests/corpus, videos possibly under ../shared/data/corpus) and its figures."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doorwatch.cli import app
from ground.errors import ConfigError
from sensors.analyzer import Passage
from sensors.corpus import (
    CORPUS_DIR_ENV,
    SHARED_CORPUS,
    ClipMeta,
    collect,
    corpus_dirs_from_env,
    evaluate_corpus,
    load_meta,
    report,
    side_by_side,
)
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


def test_corpus_labels_are_valid() -> None:
    """Every clip's labels, whether or not its video is on this machine."""
    labels = load_labels(CORPUS / "labels.json").clips
    assert labels, "the corpus lists no clip"
    for name, clip in labels.items():
        assert clip.viewpoint, name
        assert clip.scene_id, name
        assert clip.split, name
        assert clip.frames
        assert clip.width
        assert clip.height
        for event in clip.events:
            assert 0 <= event.frame < clip.frames, (name, event.frame)
    # The split rule holds over every labelled clip, not only those whose video is here.
    collected = collect([CORPUS / "labels.json"], shared_dir=None, corpus_dirs=())
    assert {c.name for c in collected.clips} | {g.name for g in collected.missing} == set(labels)


def test_every_video_meant_for_the_repo_is_in_it() -> None:
    """Clips not marked ``"video": "shared"`` must have their video committed in videos/."""
    labels = load_labels(CORPUS / "labels.json").clips
    collected = collect([CORPUS / "labels.json"], shared_dir=None, corpus_dirs=())
    assert not [g.reason for g in collected.missing if not g.awaiting_shared]
    # Fetched videos are the planners' to place (README): none may be committed here.
    committed = [c.name for c in collected.clips if labels[c.name].video == "shared"]
    assert not committed, f"videos marked as supplied under shared/ are in {CORPUS / 'videos'}"
    videos = CORPUS / "videos"
    size = sum(p.stat().st_size for p in videos.iterdir()) if videos.is_dir() else 0
    assert size < 60 * 2**20, f"corpus videos are {size / 2**20:.1f} MiB, the budget is ~60"


def test_the_default_shared_folder_is_beside_the_checkout() -> None:
    assert SHARED_CORPUS.resolve() == (SHARED_DATA / "corpus").resolve()


def test_fetched_clips_say_where_they_come_from() -> None:
    """Every clip not committed here names its source, licence and the bytes it was labelled on."""
    for name, clip in load_labels(CORPUS / "labels.json").clips.items():
        if clip.video != "shared":
            continue
        assert clip.sha256, f"{name}: no sha256 (frame numbers hold for one file only)"
        assert clip.source is not None, f"{name}: no source"
        assert all((clip.source.repo, clip.source.commit, clip.source.licence)), name


def test_clips_awaiting_shared_are_scored_when_supplied() -> None:
    """The fetched clips the planners are to put under ../shared/data/corpus/ (README).

    Until then this skips, naming the missing files: CI requires the shared data
    (DOORWATCH_REQUIRE_DATA/ALL) but not these clips (DOORWATCH_REQUIRE_CORPUS, see
    tests/requirements.py). A local copy is used when DOORWATCH_CORPUS_DIR names it.
    """
    labels = load_labels(CORPUS / "labels.json").clips
    awaiting = sorted(n for n, c in labels.items() if c.video == "shared")
    assert awaiting, "no clip marked as awaiting shared/: drop this test or the marker"
    collected = collect([CORPUS / "labels.json"], shared_dir=SHARED_DATA / "corpus")
    # Local-only clips (README: not for shared/) are scored when present, never required.
    local_only = {n for n, c in labels.items() if c.source is not None and c.source.local_only}
    absent = sorted(g.name for g in collected.missing if g.name not in local_only)
    places = [str(SHARED_DATA / "corpus"), *(str(d) for d in corpus_dirs_from_env())]
    need("corpus", not absent,
         f"corpus clips not yet supplied (looked in {', '.join(places)}; set "
         f"{CORPUS_DIR_ENV} to a local copy): {', '.join(absent)}")
    found = {c.name: c for c in collected.clips}
    results = evaluate_corpus([found[n] for n in awaiting if n in found])
    for clip, result in results:
        # The labels' frame numbers are in this file's decode order: another transcode
        # would shift them (the sha256 was checked by collect), and the count says so too.
        assert result.frames == clip.labels.frames, clip.name
    pooled = sum((r.score for _, r in results), Score())
    crossings = sum(1 for c, _ in results for e in c.labels.events if not e.ambiguous)
    assert pooled.tp + pooled.fn == crossings
    assert pooled.tp >= 1, f"none of the {crossings} labelled crossings found: {pooled}"


def test_shared_metadata_names_only_shared_clips() -> None:
    need("data", (SHARED_DATA / "labels.json").exists(),
         f"the shared labelled clips are not at {SHARED_DATA}")
    meta = load_meta(CORPUS / "shared_clips.json")
    assert set(meta) == set(load_labels(SHARED_DATA / "labels.json").clips)
    # Both files together form one corpus: no clip twice, no scene in both splits.
    collected = collect([SHARED_DATA / "labels.json", CORPUS / "labels.json"], meta)
    assert {c.split for c in collected.clips} <= {"tuning", "validation"}
    # Every shared clip's video is beside the shared labels (they are required in CI).
    assert not [g.reason for g in collected.missing if g.labels_file.parent == SHARED_DATA]


def test_metadata_overlay_and_defaults(tmp_path: Path) -> None:
    path = _labels(tmp_path, {"a.mp4": {"viewpoint": "front", "scene_id": "door1"}, "b.mp4": {}})
    clips = {c.name: c for c in
             collect([path], {"b.mp4": ClipMeta(viewpoint="overhead")}, shared_dir=None).clips}
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
        collect([path], shared_dir=None)


def test_a_video_is_looked_for_beside_the_labels_then_in_the_shared_folder(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = tmp_path / "shared_corpus"
    shared.mkdir()
    path = _labels(tmp_path, {"here.mp4": {}, "both.mp4": {}, "there.mp4": {},
                              "gone.mp4": {"video": "shared"}})
    (tmp_path / "videos" / "there.mp4").unlink()
    (tmp_path / "videos" / "gone.mp4").unlink()
    (shared / "there.mp4").write_bytes(b"")
    (shared / "both.mp4").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="sensors.corpus"):
        collected = collect([path], shared_dir=shared, corpus_dirs=())
    videos = {c.name: c.video for c in collected.clips}
    assert videos == {"here.mp4": tmp_path / "videos" / "here.mp4",
                      "both.mp4": tmp_path / "videos" / "both.mp4",
                      "there.mp4": shared / "there.mp4"}
    [gone] = collected.missing
    assert (gone.name, gone.awaiting_shared) == ("gone.mp4", True)
    assert gone.looked_in == [tmp_path / "videos" / "gone.mp4", shared / "gone.mp4"]
    for text in (gone.reason, caplog.text):
        assert "gone.mp4" in text
        assert str(tmp_path / "videos" / "gone.mp4") in text
        assert str(shared / "gone.mp4") in text
    # Without a shared folder only the one beside the labels counts.
    assert {g.name for g in collect([path], shared_dir=None, corpus_dirs=()).missing} == {
        "there.mp4", "gone.mp4"}


def test_corpus_dirs_come_between_the_labels_folder_and_shared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DOORWATCH_CORPUS_DIR (or --corpus-dir): a local copy of clips not yet under shared/."""
    first, second, shared = (tmp_path / d for d in ("first", "second", "shared"))
    for folder in (first, second, shared):
        folder.mkdir()
    path = _labels(tmp_path, {"a.mp4": {"video": "shared"}, "b.mp4": {"video": "shared"},
                              "c.mp4": {"video": "shared"}})
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / "videos" / name).unlink()
    (second / "a.mp4").write_bytes(b"")
    (first / "b.mp4").write_bytes(b"")
    (second / "b.mp4").write_bytes(b"")
    (shared / "b.mp4").write_bytes(b"")
    monkeypatch.setenv(CORPUS_DIR_ENV, f"{first}{os.pathsep}{second}")
    assert corpus_dirs_from_env() == [first, second]
    collected = collect([path], shared_dir=shared)
    assert {c.name: c.video for c in collected.clips} == {"a.mp4": second / "a.mp4",
                                                          "b.mp4": first / "b.mp4"}
    [gone] = collected.missing
    assert gone.looked_in == [tmp_path / "videos" / "c.mp4", first / "c.mp4",
                              second / "c.mp4", shared / "c.mp4"]
    # An explicit list (doorwatch eval --corpus-dir) replaces the environment's.
    assert [c.name for c in collect([path], shared_dir=shared, corpus_dirs=[]).clips] == [
        "b.mp4"]


def test_a_file_other_than_the_labelled_one_is_refused(tmp_path: Path) -> None:
    content = b"the labelled bytes"
    good = hashlib.sha256(content).hexdigest()
    path = _labels(tmp_path, {"a.mp4": {"sha256": good}, "b.mp4": {"sha256": good}})
    (tmp_path / "videos" / "a.mp4").write_bytes(content)
    (tmp_path / "videos" / "b.mp4").write_bytes(b"another transcode")
    with pytest.raises(ConfigError, match=r"b\.mp4 is not the file") as err:
        collect([path], shared_dir=None, corpus_dirs=())
    assert err.value.field == "clips.b.mp4.sha256"
    (tmp_path / "videos" / "b.mp4").write_bytes(content)
    assert len(collect([path], shared_dir=None, corpus_dirs=()).clips) == 2


def test_corpus_is_not_required_by_require_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's DOORWATCH_REQUIRE_ALL must not fail on clips only the planners can supply."""
    from tests import requirements

    monkeypatch.setenv("DOORWATCH_REQUIRE_ALL", "1")
    monkeypatch.delenv("DOORWATCH_REQUIRE_CORPUS", raising=False)
    assert not requirements._required("corpus")
    assert requirements._required("data")
    monkeypatch.setenv("DOORWATCH_REQUIRE_CORPUS", "1")
    assert requirements._required("corpus")


def test_duplicate_clip_is_named(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    again = _labels(other, {"c.mp4": {}})
    path = _labels(tmp_path, {"c.mp4": {}})
    with pytest.raises(ConfigError, match="listed twice"):
        collect([path, again], shared_dir=None)


def test_eval_command_names_a_clip_left_out(tmp_path: Path) -> None:
    """A clip with no video is named with both places; with none left, eval fails."""
    path = _labels(tmp_path, {"gone.mp4": {"video": "shared"}})
    (tmp_path / "videos" / "gone.mp4").unlink()
    result = CliRunner().invoke(app, ["eval", str(path)])
    assert result.exit_code == 2, result.output
    assert "gone.mp4" in result.output
    assert str(tmp_path / "videos" / "gone.mp4") in result.output
    assert str(SHARED_CORPUS / "gone.mp4") in result.output
    assert "no clip to evaluate" in result.output


def test_eval_command_scores_one_split_only(tmp_path: Path) -> None:
    """`--split tuning` never runs (so never shows) a validation clip."""
    path = _labels(tmp_path, {"a.mp4": {"split": "tuning", "scene_id": "s1"},
                              "b.mp4": {"split": "validation", "scene_id": "s2"}})
    # Empty files: a clip that is run fails loudly, so passing proves b.mp4 was not run.
    (tmp_path / "videos" / "a.mp4").unlink()
    result = CliRunner().invoke(app, ["eval", str(path), "--split", "validation",
                                      "--corpus-dir", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "b.mp4" in result.output
    result = CliRunner().invoke(app, ["eval", str(path), "--split", "tuning"])
    assert result.exit_code == 2, result.output
    assert "no clip to evaluate" in result.output
    result = CliRunner().invoke(app, ["eval", str(path), "--split", "both"])
    assert result.exit_code == 2
    assert "--split must be tuning or validation" in result.output


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
    clips = {c.name: c for c in collect([path], shared_dir=None).clips}
    results = [
        (clips["a.mp4"], _score("a.mp4", 4, 0, 0, [5, 5, 5, 5])),
        (clips["b.mp4"], _score("b.mp4", 4, 0, 0, [5, 5, 5, 30])),
        (clips["c.mp4"], _score("c.mp4", 1, 1, 2, [5, 5])),
    ]
    rep = report(results)
    assert [(v, t and t.name, w and w.name) for v, t, w in side_by_side(rep)] == [
        ("front", "tuning/front", None), ("overhead", None, "validation/overhead"),
        ("all", "tuning", "validation")]
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
    # A second clip with no video anywhere: left out, named, the rest still scored.
    gone = {**shared["clips"][name], "video": "shared"}
    labels.write_text(json.dumps({"clips": {name: shared["clips"][name], "gone.mpg": gone}}))
    result = CliRunner().invoke(app, ["eval", str(labels), "--meta",
                                      str(CORPUS / "shared_clips.json"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert [g["name"] for g in payload["viewpoints"]] == ["tuning/front"]
    assert payload["splits"][0]["score"]["tp"] == 1
    assert payload["hold_out"][0]["scene_id"] == "caviar_promod_front"
    assert [g["name"] for g in payload["left_out"]] == ["gone.mpg"]
    assert "gone.mpg" in result.output[:result.output.index("{")]

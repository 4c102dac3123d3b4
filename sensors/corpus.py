"""Generalization figures over several labelled corpora (tests/corpus/README.md).

A clip belongs to a *viewpoint* (front, overhead, oblique, corridor, inside),
a *scene* (one camera at one door: clips of the same camera share it) and a
*split*: ``tuning`` (clips whose results may be looked at while changing the
analyzer) or ``validation`` (whole scenes kept back, looked at only to report).
These come from the clip's own fields in its labels file or, for label files
we do not own (../shared/data), from a metadata file mapping clip names to
them. Figures:

* per split, per viewpoint within each split, per scene;
* leave-one-scene-out: the analyzer has no per-scene settings, so holding a
  scene out means scoring it on its own against the pooled figure of all the
  other scenes; the table lists each scene's held-out F1 beside the rest's,
  and the macro mean and the worst held-out scene (a big scene cannot hide
  a failing small one as it does in a pooled figure);
* precision of the confident passages (confidence >= 0.5), the largest delay
  between a crossing and the frame at which ``feed`` returned it, and how
  many passages came later than the agreed 1 s of video.

Where a clip's video is: in ``videos/`` beside its labels file, else in each
folder of ``DOORWATCH_CORPUS_DIR`` (``os.pathsep``-separated; ``doorwatch eval
--corpus-dir`` gives them explicitly), else in ``../shared/data/corpus/`` beside
the checkout. Videos fetched from other repositories may not be committed by
developers; the planners put them in that shared folder (until then a developer
points ``DOORWATCH_CORPUS_DIR`` at a local copy), and a clip's ``"video":
"shared"`` in its labels file says it is one of those. A clip whose video is in
no place is left out of the figures and named, with every place, in
``Collected.missing`` and in a warning log. A clip whose labels carry a
``sha256`` is checked against the file found: frame numbers hold for those bytes
only, so a different file under the same name is a ConfigError.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ground.errors import ConfigError
from ground.logs import get_logger
from sensors.analyzer import AnalyzerConfig
from sensors.evaluate import ClipLabels, ClipScore, Score, evaluate_clip, load_labels

__all__ = [
    "CORPUS_DIR_ENV",
    "SHARED_CORPUS",
    "ClipMeta",
    "Collected",
    "CorpusClip",
    "CorpusReport",
    "Group",
    "MissingVideo",
    "SceneHoldOut",
    "collect",
    "corpus_dirs_from_env",
    "evaluate_corpus",
    "load_meta",
    "report",
    "side_by_side",
]

log = get_logger(__name__)

# The planners' folder for corpus videos that developers may not commit (fetched from other
# repositories): ../shared/data/corpus beside the checkout this module belongs to.
SHARED_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus"
# Extra folders holding corpus videos (a local copy of clips not yet under shared/).
CORPUS_DIR_ENV = "DOORWATCH_CORPUS_DIR"


def corpus_dirs_from_env() -> list[Path]:
    """The folders named by ``DOORWATCH_CORPUS_DIR`` (``os.pathsep``-separated), in order."""
    raw = os.environ.get(CORPUS_DIR_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ClipMeta(BaseModel):
    """Viewpoint, scene and split of one clip (any may be left to the labels file)."""

    model_config = ConfigDict(extra="forbid")

    viewpoint: str | None = None
    scene_id: str | None = None
    split: str | None = None


class CorpusClip(BaseModel):
    """A clip to evaluate: where its video is, its labels and its resolved metadata."""

    name: str
    video: Path
    labels: ClipLabels
    viewpoint: str
    scene_id: str
    split: str


class MissingVideo(BaseModel):
    """A clip left out because its video is in none of the places looked in."""

    name: str
    labels_file: Path
    looked_in: list[Path]
    awaiting_shared: bool = Field(
        description="The labels file marks the video as supplied under shared/, not committed.")

    @property
    def reason(self) -> str:
        """One line naming the clip and every place looked in."""
        where = " nor ".join(str(p) for p in self.looked_in)
        why = (" (its labels mark it as supplied by the planners under shared/data/corpus/)"
               if self.awaiting_shared else "")
        return (f"clip {self.name} ({self.labels_file}) left out: its video is neither in "
                f"{where}{why}")


class Collected(BaseModel):
    """The clips to evaluate and those left out for want of their video."""

    clips: list[CorpusClip]
    missing: list[MissingVideo]


class Group(BaseModel):
    """Pooled figures of a set of clips."""

    name: str
    clips: int
    labels: int
    score: Score
    confident: Score
    max_delay_s: float
    late: int = Field(description="Passages returned more than 1 s of video after their crossing.")


class SceneHoldOut(BaseModel):
    """One scene held out: its own figures against the pooled rest."""

    scene_id: str
    split: str
    held_out: Score
    rest: Score


class CorpusReport(BaseModel):
    """Everything ``doorwatch eval`` prints for a corpus."""

    clips: list[tuple[CorpusClip, ClipScore]]
    splits: list[Group]
    viewpoints: list[Group]
    scenes: list[Group]
    hold_out: list[SceneHoldOut]
    macro_f1: float
    worst_scene: str | None
    worst_f1: float
    left_out: list[MissingVideo] = Field(
        default_factory=list, description="Clips not in these figures: their video is missing.")


def load_meta(path: Path | str) -> dict[str, ClipMeta]:
    """Read a metadata file ``{"clips": {name: {viewpoint, scene_id, split}}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: ClipMeta.model_validate(v) for name, v in data["clips"].items()}
    except FileNotFoundError as exc:
        raise ConfigError("metadata file does not exist", path=path) from exc
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"not a clip metadata file: {exc}", path=path) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(first["msg"], path=path,
                          field=".".join(str(p) for p in first.get("loc", ()))) from exc


def collect(label_files: Sequence[Path | str],
            meta: dict[str, ClipMeta] | None = None,
            shared_dir: Path | None = SHARED_CORPUS,
            corpus_dirs: Sequence[Path] | None = None) -> Collected:
    """Every clip of the label files with its metadata and where its video is.

    A clip's video is looked for in ``videos/`` beside its labels file, then in
    each of ``corpus_dirs`` (``None``: those of ``DOORWATCH_CORPUS_DIR``), then in
    ``shared_dir`` (``None``: not there). A clip found nowhere is left out
    (``Collected.missing``, and a warning naming it and every place) rather than
    stopping the whole evaluation; one found with a SHA-256 other than its labels'
    is a ConfigError (its frame numbers would be wrong). A clip with no viewpoint
    is ``unspecified``; with no scene, its own scene; with no split, ``tuning``
    (it was not declared kept back, so it must not be counted as validation). A
    scene with clips in both splits is a ConfigError, whether or not their videos are there.
    """
    meta = meta or {}
    extra_dirs = list(corpus_dirs_from_env() if corpus_dirs is None else corpus_dirs)
    clips: list[CorpusClip] = []
    missing: list[MissingVideo] = []
    splits_of: dict[str, set[str]] = {}
    seen: set[str] = set()
    for file in label_files:
        file = Path(file)
        for name, clip in load_labels(file).clips.items():
            if name in seen:
                raise ConfigError(f"clip {name} is listed twice", path=file, field=f"clips.{name}")
            seen.add(name)
            extra = meta.get(name, ClipMeta())
            split = extra.split or clip.split or "tuning"
            if split not in ("tuning", "validation"):
                raise ConfigError(f"split must be tuning or validation, not {split!r}",
                                  path=file, field=f"clips.{name}.split")
            scene_id = extra.scene_id or clip.scene_id or name
            splits_of.setdefault(scene_id, set()).add(split)
            places = [file.parent / "videos" / name, *(d / name for d in extra_dirs)]
            if shared_dir is not None:
                places.append(shared_dir / name)
            video = next((p for p in places if p.exists()), None)
            if video is None:
                gone = MissingVideo(name=name, labels_file=file, looked_in=places,
                                    awaiting_shared=clip.video == "shared")
                # Said out loud: a figure over fewer clips must never pass for the whole corpus.
                log.warning(gone.reason, extra={"clip": name, "labels_file": str(file),
                                                "looked_in": [str(p) for p in places]})
                missing.append(gone)
                continue
            if clip.sha256 is not None and (found := _sha256(video)) != clip.sha256:
                raise ConfigError(f"{video} is not the file clip {name} was labelled on "
                                  f"(sha256 {found}, labels say {clip.sha256})",
                                  path=file, field=f"clips.{name}.sha256")
            clips.append(CorpusClip(
                name=name, video=video, labels=clip,
                viewpoint=extra.viewpoint or clip.viewpoint or "unspecified",
                scene_id=scene_id, split=split,
            ))
    mixed = sorted(scene for scene, splits in splits_of.items() if len(splits) > 1)
    if mixed:
        # A validation split is whole scenes: a clip of a tuned camera tells little about
        # cameras the analyzer never saw.
        raise ConfigError(f"scene(s) {', '.join(mixed)} have clips in both splits; "
                          "a scene belongs to one split")
    return Collected(clips=clips, missing=missing)


Results = list[tuple[CorpusClip, ClipScore]]


def evaluate_corpus(clips: Iterable[CorpusClip], config: AnalyzerConfig | None = None,
                    progress: Callable[[int], None] | None = None) -> Results:
    """Run the analyzer over every clip (same configuration for all)."""
    return [(c, evaluate_clip(c.video, c.labels, config, progress)) for c in clips]


def _group(name: str, members: Results) -> Group:
    delays = [d / c.labels.fps for c, r in members for d in r.delays]
    return Group(
        name=name,
        clips=len(members),
        labels=sum(1 for c, _ in members for e in c.labels.events if not e.ambiguous),
        score=sum((r.score for _, r in members), Score()),
        confident=sum((r.confident for _, r in members), Score()),
        max_delay_s=round(max(delays, default=0.0), 3),
        late=sum(1 for d in delays if d > 1.0),
    )


def _by(results: Results, key: Callable[[CorpusClip], str]) -> list[Group]:
    names = sorted({key(c) for c, _ in results})
    return [_group(n, [(c, r) for c, r in results if key(c) == n]) for n in names]


def report(results: Results, missing: Sequence[MissingVideo] = ()) -> CorpusReport:
    """Group the per-clip results into the generalization figures (``missing``: left out)."""
    scenes = _by(results, lambda c: c.scene_id)
    hold_out = []
    for scene in scenes:
        inside = [(c, r) for c, r in results if c.scene_id == scene.name]
        rest = [r.score for c, r in results if c.scene_id != scene.name]
        hold_out.append(SceneHoldOut(scene_id=scene.name, split=inside[0][0].split,
                                     held_out=scene.score, rest=sum(rest, Score())))
    # Scenes with nothing to find and nothing reported say nothing about F1.
    scored = [h for h in hold_out if h.held_out.tp + h.held_out.fp + h.held_out.fn]
    worst = min(scored, key=lambda h: h.held_out.f1, default=None)
    return CorpusReport(
        clips=results,
        splits=_by(results, lambda c: c.split),
        viewpoints=_by(results, lambda c: f"{c.split}/{c.viewpoint}"),
        scenes=scenes,
        hold_out=hold_out,
        macro_f1=round(sum(h.held_out.f1 for h in scored) / len(scored), 4) if scored else 0.0,
        worst_scene=worst.scene_id if worst else None,
        worst_f1=round(worst.held_out.f1, 4) if worst else 0.0,
        left_out=list(missing),
    )


def side_by_side(rep: CorpusReport) -> list[tuple[str, Group | None, Group | None]]:
    """Per viewpoint (and ``all``), the tuning group beside the validation group."""
    by_name = {g.name: g for g in rep.viewpoints}
    splits = {g.name: g for g in rep.splits}
    views = sorted({g.name.split("/", 1)[1] for g in rep.viewpoints})
    rows = [(v, by_name.get(f"tuning/{v}"), by_name.get(f"validation/{v}")) for v in views]
    rows.append(("all", splits.get("tuning"), splits.get("validation")))
    return rows

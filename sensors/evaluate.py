"""Score the analyzer on hand-labelled clips (format: ../shared/data/README.md).

A reported passage matches an unmatched label of the same direction within
±1 s (the closest one). Labels marked ``ambiguous`` are neither required nor
penalized: a passage matching one is dropped from the count instead of being
a false positive, and the label is not a miss when nothing matches it.
Precision, recall and F1 are computed per clip and over all clips pooled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_config.scene import Scene
from ground.errors import ConfigError
from sensors.analyzer import AnalyzerConfig, DoorwayAnalyzer, Passage
from sensors.source_opencv import OpenCVSource

__all__ = [
    "ClipLabels",
    "ClipScore",
    "ClipSource",
    "Label",
    "LabelFile",
    "Score",
    "evaluate_clip",
    "evaluate_labels",
    "load_labels",
    "match",
]


class Label(BaseModel):
    """One labelled crossing."""

    model_config = ConfigDict(extra="ignore")

    frame: int
    direction: Literal["out", "in"]
    ambiguous: bool = False
    note: str = ""


class ClipSource(BaseModel):
    """Where a fetched clip came from (tests/corpus/README.md): enough to fetch it again."""

    model_config = ConfigDict(extra="forbid")

    repo: str
    path: str
    commit: str
    licence: str
    note: str = ""
    # Labelled for local evaluation only (e.g. a watermarked stock preview): the planners are
    # not asked to put it under shared/, so no test or CI run requires it.
    local_only: bool = False


class ClipLabels(BaseModel):
    """A clip: its scene and crossings (``width``/``height``/``frames`` are informative)."""

    model_config = ConfigDict(extra="ignore")

    fps: float = Field(gt=0)
    scene: Scene
    events: list[Label] = Field(default_factory=list)
    frames: int | None = None
    width: int | None = None
    height: int | None = None
    # Corpus metadata (tests/corpus/README.md): optional so the shared labels stay valid.
    viewpoint: str | None = None
    scene_id: str | None = None
    split: Literal["tuning", "validation"] | None = None
    # Where the video comes from: "repo" (committed in videos/ beside the labels file) or
    # "shared" (fetched from elsewhere, so only the planners put it, under shared/data/corpus/).
    video: Literal["repo", "shared"] = "repo"
    # The labelled file's SHA-256: frame numbers hold for these bytes only (another transcode
    # shifts them), so a different file under the same name is refused, not scored.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    source: ClipSource | None = None


class LabelFile(BaseModel):
    """The whole labels file."""

    model_config = ConfigDict(extra="ignore")

    clips: dict[str, ClipLabels]


class Score(BaseModel):
    """Counts and the derived metrics."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1 when nothing was reported."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1 when nothing was to be found."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        """Pool two scores."""
        return Score(tp=self.tp + other.tp, fp=self.fp + other.fp, fn=self.fn + other.fn)


class ClipScore(BaseModel):
    """A clip's result: score, what was reported, and analysis speed.

    ``delays`` holds, per passage in ``passages`` order, how many frames after
    its crossing frame ``feed`` returned it (the agreed budget is 1 s of video);
    ``confident`` scores only the passages with confidence >= 0.5 (what the
    agent alerts on at once).
    """

    clip: str
    score: Score
    passages: list[Passage]
    frames: int
    analysis_fps: float
    delays: list[int] = Field(default_factory=list)
    confident: Score = Field(default_factory=Score)


def _scene_without_description(scene: Scene) -> Scene:
    return Scene(threshold=scene.threshold, inside_point=scene.inside_point)


def load_labels(path: Path | str) -> LabelFile:
    """Read a labels file; ConfigError naming the file and field if it is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LabelFile.model_validate(data)
    except FileNotFoundError as exc:
        raise ConfigError("labels file does not exist", path=path) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", path=path) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(first["msg"], path=path, field=field or None) from exc


def match(passages: list[Passage], labels: list[Label], fps: float) -> Score:
    """Match passages to labels (same direction, within ±1 s, closest first)."""
    tolerance = fps * 1.0
    candidates = sorted(
        (abs(p.frame - lab.frame), pi, li)
        for pi, p in enumerate(passages)
        for li, lab in enumerate(labels)
        if p.direction == lab.direction and abs(p.frame - lab.frame) <= tolerance
    )
    used_p: set[int] = set()
    used_l: set[int] = set()
    tp = 0
    for _, pi, li in candidates:
        if pi in used_p or li in used_l:
            continue
        used_p.add(pi)
        used_l.add(li)
        if not labels[li].ambiguous:
            tp += 1
    fp = len(passages) - len(used_p)
    fn = sum(1 for li, lab in enumerate(labels) if li not in used_l and not lab.ambiguous)
    return Score(tp=tp, fp=fp, fn=fn)


def evaluate_clip(
    video: Path,
    clip: ClipLabels,
    config: AnalyzerConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> ClipScore:
    """Run the analyzer over one clip (decoding every frame) and score it."""
    analyzer = DoorwayAnalyzer(_scene_without_description(clip.scene), clip.fps, config)
    returned: list[tuple[Passage, int]] = []
    busy = 0.0
    index = -1
    with OpenCVSource(video, keep_color=False) as source:
        while (frame := source.read()) is not None:
            index += 1
            start = time.perf_counter()
            found = analyzer.feed(frame)
            busy += time.perf_counter() - start
            returned += [(p, index) for p in found]
            if progress is not None:
                progress(1)
    returned += [(p, index) for p in analyzer.finish()]
    returned.sort(key=lambda item: item[0].frame)
    passages = [p for p, _ in returned]
    return ClipScore(
        clip=video.name,
        score=match(passages, clip.events, clip.fps),
        passages=passages,
        frames=analyzer.frames,
        analysis_fps=analyzer.frames / busy if busy > 0 else 0.0,
        delays=[at - p.frame for p, at in returned],
        confident=match([p for p in passages if p.confidence >= 0.5], clip.events, clip.fps),
    )


def evaluate_labels(
    labels_path: Path | str,
    config: AnalyzerConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[ClipScore], Score]:
    """Evaluate every clip of a labels file (videos in ``videos/`` beside it)."""
    labels_path = Path(labels_path)
    labels = load_labels(labels_path)
    videos = labels_path.parent / "videos"
    results: list[ClipScore] = []
    for name, clip in labels.clips.items():
        video = videos / name
        if not video.exists():
            raise ConfigError(f"video {video} is missing", path=labels_path, field=f"clips.{name}")
        results.append(evaluate_clip(video, clip, config, progress))
    total = sum((r.score for r in results), Score())
    return results, total

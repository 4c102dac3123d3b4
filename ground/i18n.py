"""User-facing text from the one zh_CN/en message catalogue (``catalogue.toml``)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Literal

__all__ = ["LANGUAGES", "Language", "catalogue", "normalize_language", "t"]

Language = Literal["zh_CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh_CN", "en")
DEFAULT_LANGUAGE: Language = "zh_CN"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """All messages: key -> language -> template."""
    text = resources.files("ground").joinpath("catalogue.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {key: {str(k): str(v) for k, v in value.items()} for key, value in data.items()}


def normalize_language(value: str | None) -> Language:
    """Map 'zh', 'zh-CN', 'en_US', ... to a catalogue language (default zh_CN)."""
    if value and value.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def t(key: str, language: str | None = None, **values: object) -> str:
    """Translate ``key`` into ``language`` and fill in ``values``.

    A key missing from the catalogue is a programming error and raises KeyError,
    so tests catch it rather than a grid worker reading a raw key.
    """
    template = catalogue()[key][normalize_language(language)]
    return template.format(**values) if values else template

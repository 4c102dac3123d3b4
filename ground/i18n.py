"""User-facing text from the one zh_CN/en message catalogue (``catalogue.toml``)."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from importlib import resources
from typing import Literal

__all__ = [
    "LANGUAGES",
    "LANGUAGE_ENV",
    "Language",
    "catalogue",
    "cli_language",
    "duration_text",
    "explicit_language",
    "label",
    "normalize_language",
    "t",
]

Language = Literal["zh_CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh_CN", "en")
DEFAULT_LANGUAGE: Language = "zh_CN"
LANGUAGE_ENV = "DOORWATCH_LANG"


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


def label(prefix: str, value: str | None, language: str | None) -> str:
    """Catalogue text for an enum value (``incident.kind`` + ``breach``), else the raw value.

    Kinds and states may grow on the server before the dashboard or a report
    learns them; showing the raw value beats failing the whole page or report.
    """
    if not value:
        return ""
    try:
        return t(f"{prefix}.{value}", language)
    except KeyError:
        return value


def duration_text(seconds: float, language: str | None) -> str:
    """A short human duration (``3 min 4 s``, ``2 小时 5 分``, ``1 d 3 h``)."""
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return t("web.duration.dh", language, d=days, h=hours)
    if hours:
        return t("web.duration.hm", language, h=hours, m=minutes)
    if minutes:
        return t("web.duration.ms", language, m=minutes, s=secs)
    return t("web.duration.s", language, s=secs)


def explicit_language() -> Language | None:
    """The language the user asked doorwatch for (``--lang`` or ``DOORWATCH_LANG``), if any."""
    value = os.environ.get(LANGUAGE_ENV, "").strip()
    return normalize_language(value) if value else None


def cli_language() -> Language:
    """Language of a command's messages.

    ``--lang`` / ``DOORWATCH_LANG`` first; then the locale (``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``, in POSIX order): a Chinese locale gives zh_CN
    and any other (``C.UTF-8``, ``en_GB``, ``de_DE``) English, since a
    terminal set to a language we do not have reads English better than
    Chinese. With no locale at all: zh_CN, the language of the deployments.
    """
    chosen = explicit_language()
    if chosen is not None:
        return chosen
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").strip()
        if value:
            return "zh_CN" if value.lower().startswith("zh") else "en"
    return DEFAULT_LANGUAGE

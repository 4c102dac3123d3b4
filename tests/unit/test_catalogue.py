"""The zh_CN/en message catalogue is complete and consistent."""

from __future__ import annotations

import string

import pytest

from ground.i18n import LANGUAGES, catalogue, t


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(catalogue()))
def test_every_key_has_every_language_with_the_same_placeholders(key: str) -> None:
    entry = catalogue()[key]
    assert set(entry) == set(LANGUAGES), f"{key} lacks {set(LANGUAGES) - set(entry)}"
    assert _fields(entry["zh_CN"]) == _fields(entry["en"]), key


def test_language_names_are_normalized() -> None:
    assert t("incident.kind.breach", "en-US") == "Breach: someone left"
    assert t("incident.kind.breach", None) == "违规外出"

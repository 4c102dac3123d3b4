"""Skip-or-fail for tests that need something a user's machine may lack.

On a developer's machine a test that needs Mosquitto, PostgreSQL, Chromium or
the shared labelled videos skips with a clear reason when the thing is absent.
CI sets ``DOORWATCH_REQUIRE_<NAME>=1`` (or ``DOORWATCH_REQUIRE_ALL=1``) and then
the same absence is a failure, so a green CI run always ran everything.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["need"]


def _required(name: str) -> bool:
    flags = (f"DOORWATCH_REQUIRE_{name.upper()}", "DOORWATCH_REQUIRE_ALL")
    return any(os.environ.get(flag, "") not in ("", "0") for flag in flags)


def need(name: str, available: bool, reason: str) -> None:
    """Skip (or, when CI requires ``name``, fail) the current test unless ``available``."""
    if available:
        return
    if _required(name):
        pytest.fail(f"{reason} (DOORWATCH_REQUIRE_{name.upper()} is set, so this is a failure)")
    pytest.skip(reason)

"""Where the tests find things outside the package: the repo root and shared data."""

from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_ROOT", "SHARED_DATA"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# The labelled videos live beside the checkout, never inside it (see ../shared/data/README.md).
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()

"""Evidence JPEGs kept on the device within a disk budget.

Files are named ``<UTC time>_<event id>_<n>.jpg`` so the oldest sort first;
when the folder exceeds its budget (or files are older than ``keep_days``)
the oldest go. A failing disk (full, read-only) is logged and reported, never
fatal: the snapshot still travels through the outbox when it can.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from uuid import UUID

from ground.logs import get_logger

__all__ = ["EvidenceStore"]

log = get_logger(__name__)


class EvidenceStore:
    """A folder of evidence JPEGs bounded by size and age."""

    def __init__(self, folder: Path, *, budget_bytes: int, keep_days: float):
        self.folder = folder
        self.budget_bytes = budget_bytes
        self.keep_s = keep_days * 86400
        self.last_error: str | None = None

    def save(self, event_id: UUID, jpegs: list[bytes]) -> list[Path]:
        """Write the JPEGs of one event; returns the files written (maybe none)."""
        written: list[Path] = []
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for n, data in enumerate(jpegs):
                path = self.folder / f"{stamp}_{event_id}_{n}.jpg"
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
                written.append(path)
            self.last_error = None
        except OSError as exc:
            self.last_error = f"cannot store evidence: {exc}"
            log.error("evidence not stored", extra={"event_id": str(event_id),
                                                    "reason": str(exc)})
        self.prune()
        return written

    def files(self) -> list[Path]:
        """Evidence files, oldest first."""
        try:
            return sorted(self.folder.glob("*.jpg"))
        except OSError:
            return []

    def size(self) -> int:
        """Bytes used by evidence files."""
        return sum(_size(p) for p in self.files())

    def prune(self) -> int:
        """Delete files beyond the age limit and the oldest beyond the budget; return count."""
        files = self.files()
        sizes = [_size(p) for p in files]
        total = sum(sizes)
        now = time.time()
        removed = 0
        for path, size in zip(files, sizes, strict=True):
            too_old = now - _mtime(path) > self.keep_s
            if not too_old and total <= self.budget_bytes:
                continue
            try:
                path.unlink()
            except OSError as exc:
                log.warning("cannot delete old evidence", extra={"path": str(path),
                                                                 "reason": str(exc)})
                continue
            total -= size
            removed += 1
        return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()

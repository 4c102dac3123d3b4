"""The picture in an alert: the device's snapshot, cropped to the crossing, within a size budget.

Which snapshot: the one of the incident's first exit event (the early report,
taken as the person crossed), else of its latest event that has one. Where
to crop, best first:

1. the person's box at the crossing, when the device sent one
   (``PassageInfo.box``, optional on the wire), widened by half its size;
2. the device's door line as the server knows it (the last commissioning
   event's line, or a newer one redrawn on the dashboard), widened to take in
   somebody standing on it;
3. the whole picture.

The crop is scaled to at most ``notify.evidence_max_side`` pixels and
re-encoded (lower quality first, then smaller) until it fits
``notify.evidence_max_bytes``. Pillow does the image work, off the event loop.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ground.logs import get_logger
from server.db.base import Database

__all__ = ["Evidence", "crop_to_budget", "crossing_region", "incident_evidence"]

log = get_logger(__name__)

Region = tuple[float, float, float, float]  # normalized x1, y1, x2, y2

_DOOR_LINE_AUDIT = "device.door_line"  # written by server/web/aim.py when a line is redrawn


@dataclass(frozen=True, slots=True)
class Evidence:
    """A stored snapshot of an incident and where on it the crossing was."""

    jpeg: bytes
    region: Region | None
    event_id: str


def _clamp(region: Region, min_side: float = 0.0) -> Region:
    x1, y1, x2, y2 = region
    for_width = max(min_side - (x2 - x1), 0.0) / 2
    for_height = max(min_side - (y2 - y1), 0.0) / 2
    x1, x2, y1, y2 = x1 - for_width, x2 + for_width, y1 - for_height, y2 + for_height
    return (max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2))


def crossing_region(box: Region | None, line: Any) -> Region | None:
    """Where to crop (normalized), from the person's box, else the door line; None: all."""
    if box is not None:
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        return _clamp((x1 - w / 2, y1 - h / 2, x2 + w / 2, y2 + h / 2), 0.2)
    if line is None:
        return None
    try:
        (ax, ay), (bx, by) = line["threshold"]
        px, py = line["inside_point"]
    except (KeyError, TypeError, ValueError):
        return None
    length = max(((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5, 0.05)
    # The line, the inside point, and somebody standing on either side of the line.
    xs, ys = [ax, bx, px], [ay, by, py]
    margin = 0.6 * length
    return _clamp((min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin),
                  0.35)


def crop_to_budget(jpeg: bytes, region: Region | None, *, max_side: int,
                   max_bytes: int) -> bytes:
    """``jpeg`` cropped to ``region``, at most ``max_side`` px and ``max_bytes`` (blocking)."""
    with Image.open(io.BytesIO(jpeg)) as source:
        image = source.convert("RGB")
    if region is not None:
        x1, y1, x2, y2 = region
        width, height = image.size
        box = (int(x1 * width), int(y1 * height), max(int(x1 * width) + 1, int(x2 * width)),
               max(int(y1 * height) + 1, int(y2 * height)))
        image = image.crop(box)
    image.thumbnail((max_side, max_side))
    quality = 85
    while True:
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        if len(data) <= max_bytes or min(image.size) <= 32:
            return data
        if quality > 45:
            quality -= 15
        else:
            image = image.resize((max(1, int(image.width * 0.75)),
                                  max(1, int(image.height * 0.75))))


async def _door_line(db: Database, device_id: str) -> Any:
    """The door line the device uses, as the dashboard's aim page knows it (or None)."""
    event = await db.fetch_one(
        "SELECT payload, received_at FROM events WHERE device_id = ? AND kind = 'commissioning' "
        "ORDER BY id DESC LIMIT 1", (device_id,))
    line: Any = None
    if event is not None:
        line = json.loads(str(event["payload"])).get("door_line")
    redraw = await db.fetch_one(
        "SELECT at, detail FROM audit_log WHERE action = ? AND subject = ? "
        "ORDER BY id DESC LIMIT 1", (_DOOR_LINE_AUDIT, f"device:{device_id}"))
    if redraw is not None and (event is None or str(redraw["at"]) >= str(event["received_at"])):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            line = json.loads(str(redraw["detail"]))["line"]
    return line


async def incident_evidence(db: Database, incident_id: int) -> tuple[Evidence | None, bool]:
    """(the incident's evidence, whether a snapshot its events announced has not arrived)."""
    rows = await db.fetch_all(
        "SELECT e.id, e.event_id, e.device_id, e.kind, e.payload, s.jpeg "
        "FROM incident_events ie JOIN events e ON e.id = ie.event_row_id "
        "LEFT JOIN snapshots s ON s.event_id = e.event_id AND s.device_id = e.device_id "
        "WHERE ie.incident_id = ? ORDER BY e.id", (incident_id,))
    waiting = False
    found: Any = None
    for row in rows:
        payload = json.loads(str(row["payload"]))
        if row["jpeg"] is None:
            waiting = waiting or bool(payload.get("snapshot"))
            continue
        if found is None or (row["kind"] == "exit" and found[0]["kind"] != "exit"):
            found = (row, payload)
    if found is None:
        return None, waiting
    row, payload = found
    box = None
    for passage in (payload.get("episode") or {}).get("passages") or []:
        if passage.get("box") and passage.get("direction") == "out":
            box = tuple(passage["box"])
            break
    line = None if box is not None else await _door_line(db, str(row["device_id"]))
    return Evidence(bytes(row["jpeg"]), crossing_region(box, line), str(row["event_id"])), waiting

"""Cropping the alert's picture: where (box, door line, whole), and within the size budget."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from broker.messages import PassageInfo, decode_device_message
from broker.topics import Channel, device_topic, parse_topic
from server.notify.evidence import crop_to_budget, crossing_region


def _jpeg(size: tuple[int, int] = (1280, 720)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


def _size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        return image.size


def test_box_is_widened_and_clamped() -> None:
    assert crossing_region((0.4, 0.4, 0.6, 0.6), None) == pytest.approx((0.3, 0.3, 0.7, 0.7))
    assert crossing_region((0.0, 0.5, 0.1, 1.0), None) == pytest.approx((0.0, 0.25, 0.15, 1.0))


def test_door_line_region_takes_in_the_line_and_both_sides() -> None:
    line = {"threshold": [[0.3, 0.8], [0.7, 0.8]], "inside_point": [0.5, 0.95]}
    x1, y1, x2, y2 = crossing_region(None, line)  # type: ignore[misc]
    assert (x1, x2) == pytest.approx((0.06, 0.94))
    assert y1 == pytest.approx(0.56)
    assert y2 == 1.0
    assert crossing_region(None, None) is None
    assert crossing_region(None, {"threshold": "junk"}) is None


def test_crop_scale_and_budget() -> None:
    jpeg = _jpeg()
    whole = crop_to_budget(jpeg, None, max_side=960, max_bytes=2_000_000)
    assert _size(whole) == (960, 540)
    part = crop_to_budget(jpeg, (0.25, 0.0, 0.75, 1.0), max_side=960, max_bytes=2_000_000)
    assert _size(part) == (640, 720)
    small = crop_to_budget(jpeg, None, max_side=960, max_bytes=20_000)
    assert len(small) <= 20_000
    assert _size(small)[0] < 960  # quality alone could not do it: scaled down too
    assert _size(small)[0] / _size(small)[1] == pytest.approx(16 / 9, rel=0.02)


def test_passage_box_on_the_wire_is_optional_and_checked() -> None:
    assert PassageInfo(t=1, direction="out", track=1, confidence=0.5).box is None
    with pytest.raises(ValueError, match="box"):
        PassageInfo(t=1, direction="out", track=1, confidence=0.5, box=(0.5, 0.1, 0.4, 0.9))
    topic = device_topic("door-1", Channel.EVENT)
    base = {"v": 1, "type": "event", "device_id": "door-1", "seq": 1,
            "event_id": "5f0c5b8e-2b0a-4a61-9d6e-1f1f4e0d2c11", "time": "2026-03-01T08:00:00Z",
            "kind": "exit", "armed": True,
            "episode": {"started_at": "2026-03-01T08:00:00Z", "ended_at": "2026-03-01T08:00:03Z",
                        "door_sensor": True, "confidence": 0.9,
                        "passages": [{"t": 1.0, "direction": "out", "track": 1,
                                      "confidence": 0.9}]}}
    old = decode_device_message(parse_topic(topic), topic, json.dumps(base).encode())
    assert old.episode.passages[0].box is None  # type: ignore[union-attr]
    base["episode"]["passages"][0]["box"] = [0, 0.1, 1, 0.9]  # type: ignore[index]
    new = decode_device_message(parse_topic(topic), topic, json.dumps(base).encode())
    assert new.episode.passages[0].box == (0.0, 0.1, 1.0, 0.9)  # type: ignore[union-attr]

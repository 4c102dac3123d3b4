"""A message as it arrived from the broker, before validation."""

from __future__ import annotations

from dataclasses import dataclass, field

from doorwatch.timeutil import now_ts

__all__ = ["InboundMessage"]


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One MQTT message; ``mid`` is what we acknowledge after the commit."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 0
    retain: bool = False
    received_at: str = field(default_factory=now_ts)

"""MQTT topic names of wire protocol v1: the only place topics are built or parsed.

Layout (see DESIGN.md, "Wire contract")::

    doorwatch/v1/dev/<device>/event       QoS 1, durable device records (events, command acks)
    doorwatch/v1/dev/<device>/heartbeat   periodic health
    doorwatch/v1/dev/<device>/status      retained online/offline (Last Will = offline)
    doorwatch/v1/dev/<device>/snapshot    JPEG evidence for an event
    doorwatch/v1/cmd/<device>/<command>   server -> device
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from ground.errors import PayloadError

__all__ = [
    "DEVICE_ID_PATTERN",
    "PREFIX",
    "Channel",
    "TopicInfo",
    "command_subscription",
    "command_topic",
    "device_subscription",
    "device_topic",
    "is_valid_device_id",
    "parse_command_topic",
    "parse_topic",
    "shared",
]

PREFIX = "doorwatch/v1"

# Device ids become MQTT usernames, client ids and topic levels: no wildcards,
# no slashes, nothing a shell or a file name would trip over.
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)


class Channel(StrEnum):
    """What a device publishes on: the last level of its topic."""

    EVENT = "event"
    HEARTBEAT = "heartbeat"
    STATUS = "status"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A parsed device topic."""

    device_id: str
    channel: Channel


def is_valid_device_id(device_id: str) -> bool:
    """Whether ``device_id`` may be used as a device id."""
    return bool(_DEVICE_ID_RE.match(device_id))


def _check_device(device_id: str) -> str:
    if not is_valid_device_id(device_id):
        raise ValueError(
            f"invalid device id {device_id!r}: use 2-64 of a-z, 0-9, '-' and '_'"
        )
    return device_id


def device_topic(device_id: str, channel: Channel) -> str:
    """Topic a device publishes ``channel`` messages on."""
    return f"{PREFIX}/dev/{_check_device(device_id)}/{channel.value}"


def command_topic(device_id: str, command: str) -> str:
    """Topic the server publishes ``command`` for ``device_id`` on."""
    return f"{PREFIX}/cmd/{_check_device(device_id)}/{command}"


def device_subscription(channel: Channel | None = None) -> str:
    """Wildcard filter for every device's ``channel`` (or all channels)."""
    return f"{PREFIX}/dev/+/{channel.value if channel else '+'}"


def command_subscription(device_id: str) -> str:
    """Filter a device subscribes to for its own commands."""
    return f"{PREFIX}/cmd/{_check_device(device_id)}/+"


def shared(group: str, topic_filter: str) -> str:
    """Wrap a filter as an MQTT shared subscription so server instances split the load."""
    return f"$share/{group}/{topic_filter}"


@functools.lru_cache(maxsize=65536)
def parse_topic(topic: str) -> TopicInfo:
    """Parse a device topic; raise :class:`PayloadError` for anything else.

    Cached: a fleet has a few topics per device and the server parses one per
    message (errors are not cached, so a hostile topic stream cannot fill it).
    """
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] != "dev":
        raise PayloadError("not a doorwatch v1 device topic", topic=topic)
    device_id, channel = parts[3], parts[4]
    if not is_valid_device_id(device_id):
        raise PayloadError(f"invalid device id {device_id!r} in topic", topic=topic)
    try:
        return TopicInfo(device_id=device_id, channel=Channel(channel))
    except ValueError:
        raise PayloadError(f"unknown channel {channel!r}", topic=topic) from None


def parse_command_topic(topic: str) -> tuple[str, str]:
    """Parse a command topic into (device id, command name)."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[2] != "cmd":
        raise PayloadError("not a doorwatch v1 command topic", topic=topic)
    return parts[3], parts[4]

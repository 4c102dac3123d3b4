"""MQTT 3.1.1 and 5 packets, as far as the server's ingest client needs them.

Why our own codec instead of paho's: the server is one subscriber that must
drain tens of thousands of QoS 1 messages per second and acknowledge them
only after they are committed. paho reads a packet in many small ``recv``
calls and dispatches each through several Python layers; here a whole
socket read is split into packets with a few slice operations, and a
committed batch is acknowledged with one write of concatenated PUBACKs.
Only what the server sends and receives is implemented: CONNECT/CONNACK,
SUBSCRIBE/SUBACK, PUBLISH and PUBACK at QoS 0/1, PINGREQ/PINGRESP and
DISCONNECT. Devices keep paho (they publish a few messages a minute).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "CONNACK",
    "DISCONNECT",
    "PINGRESP",
    "PUBACK",
    "PUBLISH",
    "SUBACK",
    "Connack",
    "MqttProtocolError",
    "Suback",
    "encode_connect",
    "encode_disconnect",
    "encode_pingreq",
    "encode_puback",
    "encode_pubacks",
    "encode_publish",
    "encode_subscribe",
    "parse_connack",
    "parse_disconnect",
    "parse_puback",
    "parse_suback",
    "read_varint",
    "split_packets",
]

T = TypeVar("T")
# A received PUBLISH: (topic, payload, packet id, qos, retain).
PublishTuple = tuple[str, bytes, int, int, bool]

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

_U16 = struct.Struct(">H")
_PUBACK = struct.Struct(">BBH")

# MQTT 5 property identifiers the server sets.
_SESSION_EXPIRY = 0x11
_RECEIVE_MAXIMUM = 0x21

# Reason texts for the codes a broker answers a CONNECT with (3.1.1 return codes are
# mapped to their v5 equivalents first), for logs an operator can act on.
_CONNACK_REASONS = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable",
    0x89: "server busy", 0x8A: "banned", 0x8C: "bad authentication method",
    0x95: "packet too large", 0x97: "quota exceeded", 0x9F: "connection rate exceeded",
}
_V311_RETURN_CODES = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}


class MqttProtocolError(Exception):
    """The broker sent bytes that are not a packet we can read; the connection is dropped."""


@dataclass(frozen=True, slots=True)
class Connack:
    """The broker's answer to CONNECT."""

    session_present: bool
    reason_code: int

    @property
    def accepted(self) -> bool:
        """True if the connection was accepted."""
        return self.reason_code == 0

    @property
    def reason(self) -> str:
        """A readable reason."""
        if self.accepted:
            return "success"
        return _CONNACK_REASONS.get(self.reason_code, f"reason code 0x{self.reason_code:02x}")


@dataclass(frozen=True, slots=True)
class Suback:
    """The broker's answer to SUBSCRIBE: one reason code per topic filter."""

    packet_id: int
    reason_codes: tuple[int, ...]

    @property
    def failed(self) -> list[str]:
        """Descriptions of refused filters (codes >= 0x80)."""
        return [f"0x{code:02x}" for code in self.reason_codes if code >= 0x80]


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def read_varint(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int]:
    """Decode a variable byte integer at ``pos``; return (value, position after it)."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise MqttProtocolError("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 21:
            raise MqttProtocolError("variable byte integer longer than 4 bytes")


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("MQTT string longer than 65535 bytes")
    return _U16.pack(len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    protocol: int,
    keepalive: int,
    clean_start: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 0,
) -> bytes:
    """CONNECT for MQTT 5 (``protocol=5``) or 3.1.1 (``protocol=311``)."""
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    level = 5 if protocol == 5 else 4
    body = _string("MQTT") + bytes((level, flags)) + _U16.pack(keepalive)
    if level == 5:
        props = b""
        if session_expiry_s:
            props += bytes((_SESSION_EXPIRY,)) + struct.pack(">I", session_expiry_s)
        if receive_maximum:
            props += bytes((_RECEIVE_MAXIMUM,)) + _U16.pack(receive_maximum)
        body += encode_varint(len(props)) + props
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def encode_subscribe(packet_id: int, filters: list[str], *, protocol: int, qos: int = 1) -> bytes:
    """SUBSCRIBE to ``filters`` at ``qos``."""
    body = _U16.pack(packet_id)
    if protocol == 5:
        body += b"\x00"  # no properties
    for topic_filter in filters:
        body += _string(topic_filter) + bytes((qos,))
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def encode_publish(
    topic: str, payload: bytes, *, qos: int, retain: bool, packet_id: int, protocol: int,
    dup: bool = False,
) -> bytes:
    """PUBLISH (QoS 0 or 1)."""
    first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    body = _string(topic)
    if qos:
        body += _U16.pack(packet_id)
    if protocol == 5:
        body += b"\x00"
    return _packet(first, body + payload)


def encode_puback(packet_id: int) -> bytes:
    """PUBACK with success (the two-byte form is valid in both protocol versions)."""
    return _PUBACK.pack(PUBACK << 4, 2, packet_id)


def encode_pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs for many messages, to be written at once."""
    pack = _PUBACK.pack
    first = PUBACK << 4
    return b"".join([pack(first, 2, pid) for pid in packet_ids])


def encode_pingreq() -> bytes:
    """PINGREQ."""
    return bytes((PINGREQ << 4, 0))


def encode_disconnect() -> bytes:
    """DISCONNECT, normal (the session is kept for its expiry interval)."""
    return bytes((DISCONNECT << 4, 0))


def parse_connack(body: bytes, *, protocol: int) -> Connack:
    """Read CONNACK's variable header."""
    if len(body) < 2:
        raise MqttProtocolError("CONNACK shorter than 2 bytes")
    code = body[1]
    if protocol != 5:
        code = _V311_RETURN_CODES.get(code, 0x80) if code else 0
    return Connack(session_present=bool(body[0] & 1), reason_code=code)


def parse_suback(body: bytes, *, protocol: int) -> Suback:
    """Read SUBACK: packet id and reason codes."""
    if len(body) < 3:
        raise MqttProtocolError("SUBACK shorter than 3 bytes")
    pos = 2
    if protocol == 5:
        props, pos = read_varint(body, pos, len(body))
        pos += props
    codes = tuple(body[pos:])
    if protocol != 5:  # 3.1.1 has only 0x80 as failure, the same value as v5's
        codes = tuple(0x80 if c == 0x80 else c for c in codes)
    return Suback(packet_id=_U16.unpack_from(body)[0], reason_codes=codes)


def parse_puback(body: bytes) -> tuple[int, int]:
    """Read PUBACK: (packet id, reason code; 0 when the short form is used)."""
    if len(body) < 2:
        raise MqttProtocolError("PUBACK shorter than 2 bytes")
    return _U16.unpack_from(body)[0], body[2] if len(body) > 2 else 0


def parse_disconnect(body: bytes) -> int:
    """Read a broker's DISCONNECT (MQTT 5): the reason code, 0 if absent."""
    return body[0] if body else 0


def _as_tuple(topic: str, payload: bytes, mid: int, qos: int, retain: bool) -> PublishTuple:
    return (topic, payload, mid, qos, retain)


def split_packets(
    buf: bytearray,
    protocol: int,
    make: Callable[[str, bytes, int, int, bool], T] = _as_tuple,  # type: ignore[assignment]
    mid_base: int = 0,
) -> tuple[list[T], list[tuple[int, bytes]], int]:
    """Split complete packets off the front of ``buf``.

    Returns (publishes, other packets as (type, body), bytes consumed). Each
    PUBLISH becomes ``make(topic, payload, mid_base | packet id, qos, retain)``
    (a tuple by default): built once, in the caller's type, in one pass over the
    buffer, because PUBLISH is nearly all the traffic. The caller deletes the
    consumed bytes. Raises :class:`MqttProtocolError` on bytes that cannot be a packet.
    """
    publishes: list[T] = []
    others: list[tuple[int, bytes]] = []
    end_of_data = len(buf)
    pos = 0
    v5 = protocol == 5
    while end_of_data - pos >= 2:
        first = buf[pos]
        # Remaining length, inlined: this loop runs once per message.
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= end_of_data:
                return publishes, others, pos
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 21:
                raise MqttProtocolError("remaining length longer than 4 bytes")
        end = i + length
        if end > end_of_data:
            break
        if first >> 4 == PUBLISH:
            if length < 2:
                raise MqttProtocolError("PUBLISH without a topic")
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
            qos = (first >> 1) & 3
            if qos == 3:
                raise MqttProtocolError("PUBLISH with QoS 3")
            p = topic_end + 2 if qos else topic_end
            if p > end:
                raise MqttProtocolError("PUBLISH shorter than its header")
            packet_id = (buf[topic_end] << 8) | buf[topic_end + 1] if qos else 0
            if v5:
                props, p = read_varint(buf, p, end)
                p += props
                if p > end:
                    raise MqttProtocolError("PUBLISH properties longer than the packet")
            try:
                topic = buf[i + 2 : topic_end].decode()
            except UnicodeDecodeError:
                raise MqttProtocolError("PUBLISH topic is not UTF-8") from None
            publishes.append(make(topic, bytes(buf[p:end]), mid_base | packet_id, qos,
                                  bool(first & 1)))
        else:
            others.append((first >> 4, bytes(buf[i:end])))
        pos = end
    return publishes, others, pos

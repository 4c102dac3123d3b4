"""The server's MQTT packet codec: what it writes, what it reads, and what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from server.mqtt.wire import (
    MqttProtocolError,
    encode_connect,
    encode_pubacks,
    encode_publish,
    encode_subscribe,
    encode_varint,
    parse_connack,
    parse_suback,
    read_varint,
    split_packets,
)


def _publish_bytes(topic: str, payload: bytes, *, qos: int, packet_id: int, protocol: int,
                   retain: bool = False, with_props: bool = False) -> bytes:
    """A PUBLISH as a broker would send it (optionally with MQTT 5 properties)."""
    if not with_props:
        return encode_publish(topic, payload, qos=qos, retain=retain, packet_id=packet_id,
                              protocol=protocol)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = 60
    props.UserProperty = ("k", "v")
    packed = props.pack()  # type: ignore[no-untyped-call]
    body = (len(topic.encode()).to_bytes(2, "big") + topic.encode()
            + (packet_id.to_bytes(2, "big") if qos else b"") + packed + payload)
    first = 0x30 | (qos << 1) | int(retain)
    return bytes((first,)) + encode_varint(len(body)) + body


@pytest.mark.parametrize("protocol", [5, 311])
def test_publishes_split_at_any_byte_come_out_whole_and_in_order(protocol: int) -> None:
    packets = [
        _publish_bytes("doorwatch/v1/dev/a/event", b'{"seq":1}', qos=1, packet_id=7,
                       protocol=protocol),
        _publish_bytes("doorwatch/v1/dev/b/status", b"x" * 300, qos=0, packet_id=0,
                       protocol=protocol, retain=True),
        bytes((0xD0, 0)),  # PINGRESP between publishes
        _publish_bytes("doorwatch/v1/dev/c/event", b"", qos=1, packet_id=65535,
                       protocol=protocol, with_props=protocol == 5),
    ]
    stream = b"".join(packets)
    for cut in range(len(stream) + 1):
        buf = bytearray()
        got: list[tuple[str, bytes, int, int, bool]] = []
        others: list[tuple[int, bytes]] = []
        for part in (stream[:cut], stream[cut:]):
            buf += part
            pubs, other, used = split_packets(buf, protocol)
            del buf[:used]
            got += pubs
            others += other
        assert not buf
        assert got == [
            ("doorwatch/v1/dev/a/event", b'{"seq":1}', 7, 1, False),
            ("doorwatch/v1/dev/b/status", b"x" * 300, 0, 0, True),
            ("doorwatch/v1/dev/c/event", b"", 65535, 1, False),
        ]
        assert others == [(13, b"")]


def test_connect_311_is_the_standard_layout() -> None:
    expected = (b"\x10\x19" + b"\x00\x04MQTT" + b"\x04" + b"\xc0" + b"\x00\x1e"
                + b"\x00\x03srv" + b"\x00\x04user" + b"\x00\x02pw")
    assert encode_connect("srv", protocol=311, keepalive=30, clean_start=False,
                          username="user", password="pw") == expected


def test_connect_5_asks_for_a_session_and_a_receive_maximum() -> None:
    packet = encode_connect("srv", protocol=5, keepalive=30, clean_start=False,
                            session_expiry_s=604800, receive_maximum=2000)
    # properties: length 8 = 0x11 + u32, 0x21 + u16
    assert packet[2:13] == b"\x00\x04MQTT\x05\x00\x00\x1e\x08"
    assert packet[13:21] == (b"\x11" + (604800).to_bytes(4, "big")
                             + b"\x21" + (2000).to_bytes(2, "big"))
    assert packet[21:] == b"\x00\x03srv"


def test_pubacks_are_four_bytes_each() -> None:
    assert encode_pubacks([1, 258]) == bytes([0x40, 2, 0, 1, 0x40, 2, 1, 2])


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455])
def test_varint_round_trip(value: int) -> None:
    raw = encode_varint(value)
    assert read_varint(raw, 0, len(raw)) == (value, len(raw))


def test_subscribe_v5_carries_an_empty_property_block() -> None:
    packet = encode_subscribe(1, ["$share/g/doorwatch/v1/dev/+/+"], protocol=5)
    assert packet[0] == 0x82
    assert packet[4] == 0


def test_connack_reasons_of_both_versions_are_readable() -> None:
    assert parse_connack(b"\x01\x00", protocol=5).session_present
    assert parse_connack(b"\x00\x86\x00", protocol=5).reason == "bad user name or password"
    assert parse_connack(b"\x00\x05", protocol=311).reason == "not authorized"
    assert parse_suback(b"\x00\x01\x00\x80", protocol=5).failed == ["0x80"]
    assert parse_suback(b"\x00\x01\x01", protocol=311).failed == []


@pytest.mark.parametrize("bad", [
    bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),  # remaining length of 5 bytes
    bytes([0x30, 0x01, 0x00]),  # PUBLISH too short for a topic length
    bytes([0x36, 0x03, 0x00, 0x01, 0x61]),  # QoS 3
    bytes([0x32, 0x03, 0x00, 0x01, 0x61]),  # QoS 1 without a packet id
    bytes([0x30, 0x03, 0x00, 0x01, 0xFF]),  # topic not UTF-8
])
def test_malformed_packets_are_refused_with_a_reason(bad: bytes) -> None:
    with pytest.raises(MqttProtocolError):
        split_packets(bytearray(bad), 311)


@given(st.binary(max_size=300), st.sampled_from([5, 311]))
def test_arbitrary_bytes_either_parse_or_raise_a_protocol_error(data: bytes, protocol: int) -> None:
    buf = bytearray(data)
    try:
        pubs, others, used = split_packets(buf, protocol)
    except MqttProtocolError:
        return
    assert 0 <= used <= len(data)
    for topic, payload, packet_id, qos, _ in pubs:
        assert isinstance(topic, str)
        assert isinstance(payload, bytes)
        assert 0 <= packet_id <= 0xFFFF
        assert qos in (0, 1, 2)
    assert all(0 <= ptype <= 15 for ptype, _ in others)

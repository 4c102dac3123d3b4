"""How the link ends a connection, against a scripted broker (no Mosquitto needed).

The server acknowledges messages after its commit and, on shutdown, disconnects. If
the broker has sent something the link has not read yet (a PINGRESP, one more
message) when the link closes its socket, the kernel answers with RST and the broker
loses what of ours it had not read yet: the acknowledgements. It then sends those
messages again on the next session (seen in CI under load, Mosquitto logging
"disconnected: Broken pipe").
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from server.config import MqttSettings
from server.mqtt.inbound import InboundBuffer
from server.mqtt.link import MqttLink
from server.mqtt.wire import encode_publish

_CONNACK = {311: b"\x20\x02\x01\x00", 5: b"\x20\x03\x01\x00\x00"}
_PINGRESP = b"\xd0\x00"
_DISCONNECT = b"\xe0\x00"
_PACKET_IDS = [7, 8, 9]


class _SlowBroker:
    """A broker that, like a busy Mosquitto, reads its clients' bytes only later."""

    def __init__(self, protocol: int):
        self.protocol = protocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.connected = threading.Event()
        self.read_now = threading.Event()
        self.received = b""
        self.end = ""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.conn = conn
        conn.recv(1024)  # CONNECT
        conn.sendall(_CONNACK[self.protocol] + b"".join(
            encode_publish("doorwatch/v1/dev/d1/event", b"x", qos=1, retain=False,
                           packet_id=pid, protocol=self.protocol) for pid in _PACKET_IDS))
        self.connected.set()
        self.read_now.wait(20)
        got = b""
        try:
            while data := conn.recv(4096):
                got += data
            self.end = "eof"
        except ConnectionResetError:
            self.end = "reset"
        self.received = got
        conn.close()


@pytest.mark.parametrize("protocol", [5, 311])
async def test_acknowledgements_reach_a_broker_that_sent_something_the_link_has_not_read(
    protocol: int,
) -> None:
    broker = _SlowBroker(protocol)
    buffer = InboundBuffer()
    link = MqttLink(MqttSettings(host="127.0.0.1", port=broker.port, client_id="close-test",
                                 protocol=protocol, keepalive_s=60), buffer)
    link.start(asyncio.get_running_loop())
    batch = await asyncio.wait_for(buffer.next_batch(len(_PACKET_IDS), 0.3), 10)
    assert [m.qos for m in batch] == [1, 1, 1]
    link.ack_many([m.mid for m in batch])
    assert broker.conn is not None
    # Lands in the link's socket buffer at once (loopback); the link cannot read it
    # before it is told to stop, in this same step of the event loop.
    broker.conn.sendall(_PINGRESP)
    closing = asyncio.ensure_future(link.close())
    await asyncio.sleep(0.2)
    broker.read_now.set()
    await asyncio.wait_for(closing, 10)
    await asyncio.to_thread(broker.thread.join, 10)
    broker.listener.close()
    assert broker.end == "eof"
    for pid in _PACKET_IDS:
        assert bytes((0x40, 2, 0, pid)) in broker.received
    assert broker.received.endswith(_DISCONNECT)

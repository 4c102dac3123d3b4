"""The Mosquitto configuration we ship, attacked by real clients: each case checks what arrived."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.messages import MAX_PAYLOAD_BYTES
from broker.mosquitto.directory import SERVER_USER, BrokerDir
from broker.mosquitto.runner import find_mosquitto
from broker.mosquitto.tls import make_ca
from ground.ports import free_port
from tests.broker.helpers import Client, connect
from tests.conftest import Mosquitto
from tests.requirements import need
from tests.waiting import wait_until

pytestmark = pytest.mark.broker

EVENT = "doorwatch/v1/dev/{}/event"
CMD = "doorwatch/v1/cmd/{}/ping"


@pytest.fixture
def server(mosquitto: Mosquitto) -> Iterator[Client]:
    """The server account, subscribed to every device topic (as the real server is)."""
    client = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password,
                     client_id="test-server")
    client.subscribe("doorwatch/v1/dev/#")
    yield client
    client.close()


def test_device_cannot_publish_on_another_devices_topics(
    mosquitto: Mosquitto, server: Client
) -> None:
    mosquitto.add_device("door-b")
    a = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    for channel in ("event", "heartbeat", "status", "snapshot"):
        a.publish(f"doorwatch/v1/dev/door-b/{channel}", b'{"spoof": true}')
    a.publish("doorwatch/v1/cmd/door-b/disarm", b'{"spoof": true}')
    a.publish(EVENT.format("door-a"), b"marker")  # same connection: delivered in order
    wait_until(lambda: EVENT.format("door-a") in server.topics(), "door-a's marker at the server")
    assert server.topics() == [EVENT.format("door-a")]
    a.close()


def test_device_cannot_read_another_devices_commands(mosquitto: Mosquitto) -> None:
    a = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    mosquitto.add_device("door-b")
    a.subscribe("doorwatch/v1/cmd/door-b/#")
    a.subscribe("doorwatch/v1/cmd/+/#")
    a.subscribe("doorwatch/v1/dev/#")
    a.subscribe("#")
    server = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password,
                     client_id="test-server")
    server.publish(CMD.format("door-b"), b"secret for b")
    server.publish(CMD.format("door-a"), b"for a")
    wait_until(lambda: CMD.format("door-a") in a.topics(), "door-a's own command")
    assert a.messages == [(CMD.format("door-a"), b"for a")]
    a.close()
    server.close()


def test_anonymous_connection_is_refused(mosquitto: Mosquitto) -> None:
    client = connect(mosquitto, None, None, client_id="door-a")
    assert client.refused
    assert client.connack == "Not authorized"
    client.close()


def test_anonymous_connection_is_refused_on_the_loopback_listener_too(
    mosquitto: Mosquitto,
) -> None:
    client = connect(mosquitto, None, None, client_id="anyone", tls=False)
    assert client.refused
    client.close()


def test_wrong_password_is_refused(mosquitto: Mosquitto) -> None:
    mosquitto.add_device("door-a")
    client = connect(mosquitto, "door-a", "not-the-password-at-all")
    assert client.refused
    client.close()


def test_another_devices_password_is_refused(mosquitto: Mosquitto) -> None:
    mosquitto.add_device("door-a")
    password_b = mosquitto.add_device("door-b")
    client = connect(mosquitto, "door-a", password_b)
    assert client.refused
    client.close()


def test_tls_with_the_wrong_ca_fails(mosquitto: Mosquitto, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(make_ca("impostor CA").cert_pem)
    password = mosquitto.add_device("door-a")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(mosquitto, "door-a", password, ca_file=other_ca)


def test_broker_certificate_must_match_the_host_name(mosquitto: Mosquitto) -> None:
    """The certificate names localhost and 127.0.0.1, not whatever a device is told."""
    context = ssl.create_default_context(cafile=str(mosquitto.broker.ca_cert_file))
    with socket.create_connection(("127.0.0.1", mosquitto.tls_port)) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        context.wrap_socket(raw, server_hostname="broker.elsewhere.example")


def test_oversize_payload_is_refused(mosquitto: Mosquitto, server: Client) -> None:
    snapshot = EVENT.format("door-a").replace("event", "snapshot")
    a = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))
    a.publish(snapshot, b"j" * MAX_PAYLOAD_BYTES)  # the largest legitimate snapshot passes
    wait_until(lambda: len(server.messages) == 1, "the largest snapshot at the server")
    a.paho.publish(snapshot, b"j" * (MAX_PAYLOAD_BYTES + 600_000), qos=1)
    wait_until(lambda: a.disconnects, "the broker to drop the oversize sender")
    b = connect(mosquitto, "door-b", mosquitto.add_device("door-b"))
    b.publish(EVENT.format("door-b"), b"marker")
    wait_until(lambda: EVENT.format("door-b") in server.topics(), "door-b's marker at the server")
    assert [len(p) for t, p in server.messages] == [MAX_PAYLOAD_BYTES, len(b"marker")]
    a.close()
    b.close()


def test_a_device_cannot_take_over_another_devices_client_id(
    mosquitto: Mosquitto, server: Client
) -> None:
    b = connect(mosquitto, "door-b", mosquitto.add_device("door-b"))
    a = connect(mosquitto, "door-a", mosquitto.add_device("door-a"), client_id="door-b")
    assert not a.refused
    # A is A, whatever client id it claimed: it may publish as door-a only ...
    a.publish(EVENT.format("door-a"), b"from a")
    # ... and B was not kicked off.
    b.publish(EVENT.format("door-b"), b"from b")
    wait_until(lambda: len(server.messages) == 2, "both devices' messages at the server",
               detail=lambda: f"server got {server.messages}")
    assert b.disconnects == []
    assert server.messages == [(EVENT.format("door-a"), b"from a"),
                               (EVENT.format("door-b"), b"from b")]
    a.close()
    b.close()


# The production configuration: TLS only, no plaintext listener at all.


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Mosquitto]:
    """Mosquitto on the configuration `doorwatch broker init` writes by default."""
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    broker = BrokerDir(tmp_path / "broker")
    broker.init(port=free_port(), host="127.0.0.1")
    instance = Mosquitto(broker)
    instance.start()
    yield instance
    instance.stop()


def _mqtt_connect_packet(client_id: str) -> bytes:
    body = b"\x00\x04MQTT\x04\x02\x00\x1e" + struct.pack("!H", len(client_id)) + client_id.encode()
    return bytes([0x10, len(body)]) + body


def test_production_config_has_no_plaintext_listener(production: Mosquitto) -> None:
    config = production.broker.config_file.read_text()
    listeners = [line for line in config.splitlines() if line.startswith("listener")]
    assert listeners == [f"listener {production.tls_port} 127.0.0.1"]
    assert "certfile" in config
    assert "allow_anonymous false" in config
    # Speaking plain MQTT to the only port gets no CONNACK: the listener wants TLS.
    with socket.create_connection(("127.0.0.1", production.tls_port), timeout=5) as sock:
        sock.sendall(_mqtt_connect_packet("door-a"))
        try:
            answer = sock.recv(16)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20"), f"plaintext CONNACK from a TLS port: {answer!r}"
    # ... while TLS on the same port works.
    ok = connect(production, SERVER_USER, production.broker.server_password, client_id="srv")
    assert not ok.refused
    ok.close()

"""Mosquitto, started with the configuration we ship, sends without Nagle's algorithm.

Nagle's algorithm held the tail of a larger message back until the peer's delayed
ACK (~40 ms): ~45 ms per larger device message in the field. The check reads
TCP_NODELAY from the broker's own end of each client connection: the test process
borrows that socket from Mosquitto (its child) with pidfd_getfd(2).
"""

from __future__ import annotations

import ctypes
import os
import socket
from pathlib import Path

import pytest

from broker.mosquitto.directory import SERVER_USER, BrokerDir
from tests.broker.helpers import Client, connect
from tests.conftest import Mosquitto
from tests.requirements import need

pytestmark = pytest.mark.broker

_PIDFD_GETFD = 438  # the same number on x86_64 and arm64 (the generic syscall table)


def _brokers_end_nodelay(pid: int, client: Client) -> int:
    """TCP_NODELAY of process ``pid``'s socket whose peer is ``client``'s socket."""
    sock = client.paho.socket()
    assert sock is not None, "the client is not connected"
    ours = sock.getsockname()
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if not target.startswith("socket:"):
                continue
            fd = libc.syscall(_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                # A kernel or sandbox without pidfd_getfd: skip for a user, fail in CI.
                need("pidfd_getfd", False, "cannot borrow Mosquitto's sockets here "
                     f"(pidfd_getfd: {os.strerror(ctypes.get_errno())})")
            with socket.socket(fileno=fd) as theirs:  # closes our copy only
                if theirs.type != socket.SOCK_STREAM:
                    continue
                try:
                    peer = theirs.getpeername()
                except OSError:
                    continue  # a listening socket
                if peer == ours:
                    return theirs.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        os.close(pidfd)
    raise AssertionError(f"Mosquitto has no connection from {ours}")


def test_the_broker_sets_tcp_nodelay_on_both_listeners(mosquitto: Mosquitto) -> None:
    # The fixture started Mosquitto with the shipped config: it accepts the option.
    assert "set_tcp_nodelay true" in mosquitto.broker.config_file.read_text()
    assert mosquitto.process is not None
    device = connect(mosquitto, "door-a", mosquitto.add_device("door-a"))  # TLS
    server = connect(mosquitto, SERVER_USER, mosquitto.broker.server_password, tls=False)
    try:
        assert not device.refused
        assert not server.refused
        assert _brokers_end_nodelay(mosquitto.process.pid, device) == 1
        assert _brokers_end_nodelay(mosquitto.process.pid, server) == 1
    finally:
        device.close()
        server.close()


def test_broker_run_adds_tcp_nodelay_to_an_older_config(tmp_path: Path) -> None:
    broker = BrokerDir(tmp_path / "broker")
    broker.init(port=18883, host="127.0.0.1", loopback_port=11883)
    older = broker.config_file.read_text().replace("set_tcp_nodelay true\n", "")
    broker.config_file.write_text(older)
    assert broker.upgrade()
    assert "set_tcp_nodelay true" in broker.config_file.read_text()
    assert not broker.upgrade()  # up to date now: left alone

"""Free ports for brokers started by the demo, tests and benchmarks."""

from __future__ import annotations

import socket

from ground.ports import free_ports


def test_ports_chosen_together_are_distinct_and_free() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if something holds it

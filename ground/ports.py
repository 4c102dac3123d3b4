"""Free TCP ports on loopback, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import socket
from contextlib import ExitStack

__all__ = ["free_port", "free_ports"]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that nobody listens on right now.

    Every socket stays bound until all are chosen: picked one at a time (bind to
    port 0, close, again), the kernel may hand out the same port twice, and a
    broker configured with it for two listeners fails to start (seen here).
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port that nobody listens on right now."""
    return free_ports(1, host)[0]

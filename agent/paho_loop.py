"""Run a paho client on the asyncio event loop instead of on a thread of its own.

paho's own ``loop_start`` costs one thread per connection; the fleet simulator
runs thousands of devices in one process, where that many threads fight over
the GIL. paho supports an external loop through its socket callbacks (the way
aiomqtt drives it); this module is that glue, used by the agent's link with
``threaded=False`` (the simulator). Connecting (DNS, TCP, TLS handshake)
happens on a worker thread so it never blocks the loop. (The server has its
own client for its high-rate subscription: server/mqtt/wire.py says why.)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import paho.mqtt.client as mqtt

from agent.reach import BrokerReach

__all__ = ["PahoLoopDriver"]

# Packets handled per readiness callback: fewer wake-ups at high rates.
_PACKETS_PER_READ = 50


class PahoLoopDriver:
    """Connects, reconnects with backoff, and services one paho client on ``loop``."""

    def __init__(self, client: mqtt.Client, addresses: list[tuple[str, int]], keepalive: int,
                 loop: asyncio.AbstractEventLoop, name: str,
                 connect_kwargs: dict[str, Any] | None = None, reach: BrokerReach | None = None):
        self._client = client
        self._reach = reach or BrokerReach(name)
        self._connect_kwargs = connect_kwargs or {}
        # Broker nodes in order; after a failed connect or a lost connection the
        # next one is tried (a clustered broker), the same as the threaded link.
        self._addresses = addresses
        self._node = 0
        self._keepalive = keepalive
        self._loop = loop
        self._name = name
        self._fd: int | None = None
        # The client's own socket-open callback (the agent's TCP_NODELAY) still runs.
        self._also_opened = client.on_socket_open
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._done_writing

    @property
    def where(self) -> str:
        """host:port of the broker node in use (or tried next)."""
        host, port = self._addresses[self._node % len(self._addresses)]
        return f"{host}:{port}"

    # paho socket callbacks: may come from the connecting worker thread, so every
    # change to the loop's selector goes through call_soon_threadsafe.

    def _opened(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._also_opened is not None:
            self._also_opened(client, userdata, sock)
        fd = sock.fileno()
        self._loop.call_soon_threadsafe(self._add_reader, fd)

    def _add_reader(self, fd: int) -> None:
        self._fd = fd
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        self._client.loop_read(_PACKETS_PER_READ)

    def _closed(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        self._loop.call_soon_threadsafe(self._forget)

    def _forget(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._fd)
                self._loop.remove_writer(self._fd)
            self._fd = None

    def _want_write(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._loop.call_soon_threadsafe(self._add_writer, fd)

    def _add_writer(self, fd: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.add_writer(fd, self._client.loop_write)

    def _done_writing(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._loop.call_soon_threadsafe(self._remove_writer, fd)

    def _remove_writer(self, fd: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(fd)

    async def run(self) -> None:
        """Keep the client connected until cancelled."""
        delay = 1.0
        failures = 0
        while True:
            host, port = self._addresses[self._node % len(self._addresses)]
            try:
                await asyncio.to_thread(self._client.connect, host, port,
                                        self._keepalive, **self._connect_kwargs)
            except OSError as exc:
                self._node += 1
                failures += 1
                # Back off only once every node has been tried in this round.
                pause = delay if failures % len(self._addresses) == 0 else 0.2
                self._reach.failed(f"{host}:{port}", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(pause)
                if pause == delay:
                    delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            failures = 0
            # loop_misc sends keepalive pings and notices a dead connection.
            while self._client.socket() is not None:
                self._client.loop_misc()
                await asyncio.sleep(1.0)
            self._forget()
            if len(self._addresses) > 1:
                self._node += 1  # the node dropped us: another one first
            await asyncio.sleep(1.0)

    def stop(self) -> None:
        """Disconnect (flushing the DISCONNECT packet) and stop servicing the socket."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
            self._client.loop_write()
        self._forget()

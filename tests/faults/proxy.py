"""A TCP proxy between agents and the broker that can cut the network.

While cut, it drops every open connection and closes new ones on accept, the
way a lost uplink looks to a device. No library does exactly this with an
in-process switch (toxiproxy is a separate Go service), and it is 60 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["CuttableProxy"]


class CuttableProxy:
    """Forward 127.0.0.1:``port`` to ``upstream_port``; :meth:`cut` simulates network loss."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.connections = 0

    def start(self) -> None:
        """Start listening (on a free port) in a background thread."""
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop).result(5)
        self.port = server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self._down:
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def _set(self, down: bool) -> None:
        self._down = down
        if down:
            for writer in list(self._writers):
                writer.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until :meth:`restore`."""
        self._loop.call_soon_threadsafe(self._set, True)

    def restore(self) -> None:
        """Let connections through again."""
        self._loop.call_soon_threadsafe(self._set, False)

    def stop(self) -> None:
        """Stop the proxy thread."""
        self._loop.call_soon_threadsafe(self._set, True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

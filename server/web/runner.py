"""Serving the dashboard from the server process: uvicorn on a socket we bind ourselves.

Binding before the TaskGroup starts means a busy port is a clear start-up
error, and port 0 (any free port, for tests) is known at once. Signals stay
with the server process: uvicorn's own signal capture is switched off, and
cancelling :meth:`WebServer.run` shuts it down gracefully.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from ground.errors import ConfigError
from ground.logs import get_logger
from server.config import ServerSettings
from server.db.base import Database
from server.web.app import create_app

__all__ = ["WebServer", "start_web"]

log = get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the server process owns SIGINT/SIGTERM."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to the server process."""
        yield


class WebServer:
    """The HTTP API and dashboard, listening on a bound socket."""

    def __init__(self, app: FastAPI, sock: socket.socket):
        self.app = app
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        proxies: list[str] = app.state.settings.http.trusted_proxies
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default; the client address
        # decides login throttling, so only configured proxies may set it.
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=3, server_header=False,
                                proxy_headers=bool(proxies),
                                forwarded_allow_ips=",".join(proxies) or "")
        self._server = _EmbeddedUvicorn(config)

    @property
    def url(self) -> str:
        """Base URL of the dashboard."""
        return f"http://{self.host}:{self.port}"

    async def run(self) -> None:
        """Serve until cancelled; on cancellation close listeners and open connections."""
        serving = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        log.info("dashboard listening", extra={"url": self.url})
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            self.app.state.stopping.set()  # ends live streams so shutdown does not wait
            self._server.should_exit = True
            await serving
            raise
        finally:
            self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          field="http.port") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_web(db: Database, settings: ServerSettings) -> WebServer:
    """Build the app on the server's ``db`` and bind its listening socket."""
    app = await create_app(db, settings)
    return WebServer(app, _bind(settings.http.host, settings.http.port))

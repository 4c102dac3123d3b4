"""A pure-Python MQTT broker (amqtt) for ``doorwatch demo`` on machines without Mosquitto.

Loopback only and without authentication: it exists so a newcomer can see the
whole system run with nothing but Python installed. Production and the tests
use Mosquitto with our generated configuration. Run as
``python -m doorwatch.embedded_broker PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

__all__ = ["run_embedded_broker"]


def _config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def run_embedded_broker(port: int) -> None:
    """Serve MQTT on 127.0.0.1:``port`` until SIGINT/SIGTERM."""
    from amqtt.broker import Broker

    broker = Broker(_config(port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(run_embedded_broker(int(sys.argv[1])))

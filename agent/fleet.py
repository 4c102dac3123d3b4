"""Fleet simulator: many simulated devices in one process, on the agent's own outbox and link.

Used by ``doorwatch sim`` for load and fault tests. Each device has its own
MQTT connection and credentials; all share one outbox file. Production is
restart-safe: ``--events N`` means "until each device's seq reaches N", so a
simulator killed and started again on the same data folder finishes the job
without producing more or fewer records.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from agent.link import AgentLink
from agent.outbox import Outbox
from broker.messages import Event, EventKind, Heartbeat, encode, utc_now
from broker.topics import Channel, device_topic
from firmware_config.device_config import MqttLinkSettings
from ground.errors import ConfigError

__all__ = ["FleetResult", "load_credentials", "run_fleet"]

_KINDS = (EventKind.EXIT, EventKind.ENTRY, EventKind.HANDOVER)


@dataclass(frozen=True)
class FleetResult:
    """What the fleet did."""

    devices: int
    produced: int
    acked: int
    pending: int
    heartbeats_sent: int = 0
    connected_at_end: int = 0
    connect_s: float = 0.0


def load_credentials(path: Path) -> dict[str, str]:
    """Read ``{"device-id": "password", ...}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("credentials file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}", path=path) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError('expected {"device-id": "password", ...}', path=path)
    return {str(k): v for k, v in data.items()}


def _build(device_id: str, kind: EventKind, seq: int) -> bytes:
    return encode(Event(device_id=device_id, seq=seq, time=utc_now(), kind=kind, armed=True))


async def _produce(outbox: Outbox, links: list[AgentLink], events: int, rate: float,
                   seed: int) -> int:
    rng = random.Random(seed)
    produced = 0
    interval = 1 / rate if rate > 0 else 0.0
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    remaining = {link.device_id: events - await outbox.last_seq(link.device_id)
                 for link in links}
    by_id = {link.device_id: link for link in links}
    while any(n > 0 for n in remaining.values()):
        for device_id, left in remaining.items():
            if left <= 0:
                continue
            kind = rng.choice(_KINDS)
            topic = device_topic(device_id, Channel.EVENT)
            await outbox.append(device_id, topic, functools.partial(_build, device_id, kind))
            remaining[device_id] = left - 1
            produced += 1
            by_id[device_id].wake()
            if interval:
                next_at += interval
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
    return produced


def _raise_open_files_limit(needed: int) -> None:
    """One socket per simulated device: lift the soft descriptor limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(needed, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _heartbeats(links: list[AgentLink], interval_s: float, counter: list[int]) -> None:
    """Each device sends a heartbeat every ``interval_s``, spread evenly over the interval."""
    started = time.monotonic()
    spacing = interval_s / max(1, len(links))
    beat = 0
    while True:
        for index, link in enumerate(links):
            due = started + beat * interval_s + index * spacing
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if link.connected.is_set():
                heartbeat = Heartbeat(device_id=link.device_id, time=utc_now(), uptime_s=0,
                                      armed=True, last_seq=0, outbox_depth=0,
                                      firmware_version="sim")
                link.publish_transient(Channel.HEARTBEAT, encode(heartbeat), qos=1)
                counter[0] += 1
        beat += 1


async def run_fleet(
    *,
    credentials: dict[str, str],
    host: str,
    port: int,
    data_dir: Path,
    events: int,
    rate: float,
    drain_timeout_s: float,
    seed: int = 1,
    heartbeat_interval_s: float = 0.0,
    duration_s: float = 0.0,
    brokers: list[str] | None = None,
    ca_file: Path | None = None,
) -> FleetResult:
    """Run the fleet until every device produced ``events`` records and all are acknowledged.

    With ``ca_file`` the devices connect with TLS (as in production, where no device
    credential works on the broker's plaintext loopback listener).
    """
    _raise_open_files_limit(len(credentials) + 100)
    async with Outbox(data_dir / "fleet-outbox.db", durable=False) as outbox:
        # With several broker nodes (a cluster), device i starts at node i: the fleet is
        # spread over the nodes as real devices given rotated address lists would be.
        nodes = [f"{host}:{port}", *(brokers or [])]
        links = []
        for index, (device_id, pw) in enumerate(sorted(credentials.items())):
            first, *others = nodes[index % len(nodes):] + nodes[:index % len(nodes)]
            first_host, _, first_port = first.rpartition(":")
            settings = MqttLinkSettings(host=first_host, port=int(first_port),
                                        password=SecretStr(pw), brokers=others,
                                        tls=ca_file is not None, ca_file=ca_file)
            links.append(AgentLink(device_id, settings, outbox, threaded=False))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for link in links:
            link.start(loop)
        beats = [0]
        connected = 0
        connect_s = 0.0
        try:
            async with asyncio.TaskGroup() as group:
                pumps = [group.create_task(link.run(), name=f"link-{link.device_id}")
                         for link in links]
                if heartbeat_interval_s > 0:
                    pumps.append(group.create_task(
                        _heartbeats(links, heartbeat_interval_s, beats), name="heartbeats"))
                produced = await _produce(outbox, links, events, rate, seed)
                if duration_s > 0:
                    # Hold the whole fleet for the duration: count it from the moment every
                    # device is connected (thousands of connections take a while to open).
                    deadline = loop.time() + max(60.0, len(links) / 20)
                    while (not all(link.connected.is_set() for link in links)  # noqa: ASYNC110
                           and loop.time() < deadline):
                        await asyncio.sleep(0.5)
                    connect_s = loop.time() - started
                    await asyncio.sleep(duration_s)
                deadline = loop.time() + drain_timeout_s
                while (await outbox.depth()  # noqa: ASYNC110 - polls a file
                       and loop.time() < deadline):
                    await asyncio.sleep(0.1)
                connected = sum(link.connected.is_set() for link in links)
                for pump in pumps:
                    pump.cancel()
        finally:
            for link in links:
                link.stop()
        pending = await outbox.depth()
        return FleetResult(devices=len(links), produced=produced,
                           acked=sum(link.acked_total for link in links), pending=pending,
                           heartbeats_sent=beats[0], connected_at_end=connected,
                           connect_s=round(connect_s, 1))

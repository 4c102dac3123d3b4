"""Measure RabbitMQ 3.10 and NATS 2.9 as three-node clusters before choosing one (issue 20).

For each broker: start a 3-node cluster on loopback, make the replicated queue
(RabbitMQ quorum queue bound to amq.topic) or stream (JetStream, 3 replicas), run a
consumer over the broker's native protocol (AMQP 0-9-1 / JetStream pull) that acks
what it received, and publish from paho devices (MQTT 3.1.1, QoS 1, clean_session
False, an outbox-like resend of everything not PUBACKed after a reconnect, each device
with all three nodes' addresses, starting at a different one).

* throughput: devices publish as fast as their windows allow; acked events/s, and the
  brokers' CPU (all three nodes) per message;
* failover: devices publish at a steady rate; the node leading the queue/stream is
  SIGKILLed; per device, the time from the kill to the first PUBACK on a new
  connection; the longest pause in what the consumer receives; loss = PUBACKed
  events the consumer never got; later the node is restarted (rejoin time);
* weight: cluster start time, idle resident memory per node.

Run: ``python -m bench.cluster_choice [rabbitmq|nats ...]``. Writes
bench/results/cluster_choice.json. The figures come from a shared 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.clusters import NatsCluster, Node, RabbitCluster
from bench.harness import RESULTS, write_result

QUEUE = "doorwatch.bench"
# Seconds the devices publish in the failover phase (the leader is killed 8 s in).
FAILOVER_S = float(os.environ.get("DOORWATCH_BENCH_FAILOVER_S", "25"))


# -- devices (a separate process) -------------------------------------------------------


class _Device(threading.Thread):
    """One paho device: publish seq-numbered QoS 1 events, fail over between nodes."""

    def __init__(self, name: str, addresses: list[tuple[str, int]], password: str,
                 rate: float, stop: threading.Event, window: int):
        super().__init__(daemon=True)
        self.dev = name
        self.addresses = addresses
        self.password = password
        self.rate = rate  # events/s; 0 = as fast as the window allows
        self.stop_flag = stop
        self.window = window
        self.lock = threading.Lock()
        self.unacked: dict[int, float] = {}  # seq -> first publish time
        self.mid_seq: dict[int, int] = {}
        self.acked: set[int] = set()
        self.seq = 0
        self.disconnects: list[float] = []
        self.first_ack_after: list[float] = []  # time of first PUBACK on each new connection
        self._await_first = False
        self.connected = threading.Event()

    def _client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.dev, protocol=mqtt.MQTTv311,
                        clean_session=False)
        c.username_pw_set("bench", self.password)
        c.max_inflight_messages_set(self.window)
        c.on_publish = self._on_publish
        c.on_disconnect = lambda *_a: self.connected.clear()
        c.on_connect = lambda _c, _u, _f, rc, _p: None if rc.is_failure else self.connected.set()
        return c

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self.lock:
            seq = self.mid_seq.pop(mid, None)
            if seq is not None:
                self.unacked.pop(seq, None)
                self.acked.add(seq)
                if self._await_first:
                    self._await_first = False
                    self.first_ack_after.append(time.time())

    def _publish(self, client: mqtt.Client, seq: int) -> None:
        payload = json.dumps({"d": self.dev, "s": seq, "t": time.time()}).encode()
        info = client.publish(f"doorwatch/v1/dev/{self.dev}/event", payload, qos=1)
        with self.lock:
            self.mid_seq[info.mid] = seq
            self.unacked.setdefault(seq, time.time())

    def run(self) -> None:
        index = 0
        first = True
        while not self.stop_flag.is_set():
            host, port = self.addresses[index % len(self.addresses)]
            client = self._client()
            try:
                client.connect(host, port, keepalive=10)
            except OSError:
                index += 1
                time.sleep(0.2)
                continue
            client.loop_start()
            if not self.connected.wait(5):
                client.loop_stop()
                index += 1
                continue
            with self.lock:
                self.mid_seq.clear()
                resend = sorted(self.unacked)
                self._await_first = not first
            first = False
            for seq in resend:  # the outbox: everything not acknowledged goes again
                self._publish(client, seq)
            next_at = time.monotonic()
            while not self.stop_flag.is_set() and self.connected.is_set():
                with self.lock:
                    full = len(self.unacked) >= self.window
                if full:
                    time.sleep(0.002)
                    continue
                if self.rate:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    next_at += 1 / self.rate
                self.seq += 1
                self._publish(client, self.seq)
            if not self.stop_flag.is_set():
                self.disconnects.append(time.time())
                index += 1
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()
        # Let the last acks arrive.
        deadline = time.monotonic() + 20
        while self.unacked and time.monotonic() < deadline and self.connected.is_set():
            time.sleep(0.05)


def _publisher(addresses: list[tuple[str, int]], password: str, devices: int, rate: float,
               window: int, duration: float, out: Any) -> None:
    stop = threading.Event()
    n = len(addresses)
    devs = [_Device(f"dev{i:03d}", addresses[i % n:] + addresses[:i % n], password, rate, stop,
                    window) for i in range(devices)]
    for d in devs:
        d.start()
    time.sleep(duration)
    stop.set()
    for d in devs:
        d.join(30)
    out.put({d.dev: {"acked": sorted(d.acked), "published": d.seq,
                     "disconnects": d.disconnects, "first_ack_after": d.first_ack_after}
             for d in devs})


# -- consumers (this process) ---------------------------------------------------------


class _Received:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], int] = {}
        self.times: list[float] = []

    def add(self, body: bytes) -> None:
        data = json.loads(body)
        key = (data["d"], data["s"])
        self.seen[key] = self.seen.get(key, 0) + 1
        self.times.append(time.time())


async def _rabbit_consume(cluster: RabbitCluster, got: _Received, stop: asyncio.Event,
                          ready: asyncio.Event) -> None:
    import aio_pika

    index = 0
    while not stop.is_set():
        node = cluster.nodes[index % len(cluster.nodes)]
        try:
            conn = await aio_pika.connect(host="127.0.0.1", port=node.native_port, login="bench",
                                          password=cluster.password, timeout=5)
        except Exception:
            index += 1
            await asyncio.sleep(0.3)
            continue
        try:
            async with conn:
                ch = await conn.channel()
                await ch.set_qos(prefetch_count=2000)
                queue = await ch.declare_queue(QUEUE, durable=True,
                                               arguments={"x-queue-type": "quorum"})
                await queue.bind("amq.topic", "doorwatch.v1.dev.#")
                ready.set()
                async with queue.iterator() as it:
                    pending: list[Any] = []
                    while not stop.is_set():
                        try:
                            msg = await asyncio.wait_for(it.__anext__(), 0.05)
                        except TimeoutError:
                            msg = None
                        if msg is not None:
                            got.add(msg.body)
                            pending.append(msg)
                        if pending and (msg is None or len(pending) >= 500):
                            await pending[-1].ack(multiple=True)
                            pending = []
        except Exception:  # the node went away: next one
            index += 1
            await asyncio.sleep(0.3)


async def _nats_consume(cluster: NatsCluster, got: _Received, stop: asyncio.Event,
                        ready: asyncio.Event) -> None:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

    servers = [f"nats://127.0.0.1:{n.native_port}" for n in cluster.nodes]
    nc = await nats.connect(servers=servers, user="bench", password=cluster.password,
                            max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream(timeout=10)
    await js.add_stream(StreamConfig(name="DWBENCH", subjects=["doorwatch.v1.dev.>"],
                                     num_replicas=3, storage=StorageType.FILE))
    sub = await js.pull_subscribe("doorwatch.v1.dev.>", durable="servers", stream="DWBENCH",
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                                        max_ack_pending=20000, ack_wait=30))
    ready.set()
    while not stop.is_set():
        try:
            msgs = await sub.fetch(1000, timeout=0.5)
        except Exception:
            await asyncio.sleep(0.05)
            continue
        for m in msgs:
            got.add(m.data)
            await m.ack()
    await nc.close()


async def _leader(cluster: RabbitCluster | NatsCluster) -> Node:
    if isinstance(cluster, RabbitCluster):
        out = cluster.ctl(cluster.nodes[0], "list_queues", "name", "leader", "--quiet")
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == QUEUE:
                return next(n for n in cluster.nodes if n.name == parts[1])
        raise RuntimeError(out)
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{cluster.nodes[0].native_port}", user="bench",
                            password=cluster.password)
    info = await nc.jetstream().stream_info("DWBENCH")
    await nc.close()
    assert info.cluster is not None
    return next(n for n in cluster.nodes if n.name == info.cluster.leader)


def _cpu(cluster: RabbitCluster | NatsCluster) -> float:
    total = 0.0
    for n in cluster.nodes:
        if n.alive():
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(n.pid)
                for proc in [p, *p.children(recursive=True)]:
                    t = proc.cpu_times()
                    total += t.user + t.system
    return total


def _rss_mib(cluster: RabbitCluster | NatsCluster) -> list[float]:
    out = []
    for n in cluster.nodes:
        p = psutil.Process(n.pid)
        out.append(round(sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
                         / 2**20, 1))
    return out


async def _phase(cluster: RabbitCluster | NatsCluster, got: _Received, *, devices: int,
                 rate: float, window: int, duration: float, kill_at: float | None
                 ) -> dict[str, Any]:
    addresses = [("127.0.0.1", n.mqtt_port) for n in cluster.nodes]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(addresses, cluster.password, devices, rate,
                                                window, duration, out))
    cpu0, t0 = _cpu(cluster), time.time()
    proc.start()
    killed: Node | None = None
    kill_time = None
    if kill_at is not None:
        victim = await _leader(cluster)
        await asyncio.sleep(kill_at)
        kill_time = time.time()
        victim.kill()
        killed = victim
    result = await asyncio.to_thread(out.get, True, duration + 120)
    proc.join(30)
    t_pub = time.time()
    acked = {(d, s) for d, r in result.items() for s in r["acked"]}
    # Drain: wait until the consumer has everything acknowledged, or 60 s.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not acked <= got.seen.keys():  # noqa: ASYNC110
        await asyncio.sleep(0.2)  # the consumer task fills got.seen; a poll is enough here
    elapsed = (max(got.times) if got.times else t_pub) - t0
    cpu = _cpu(cluster) - cpu0
    missing = acked - got.seen.keys()
    phase: dict[str, Any] = {
        "devices": devices, "rate_per_device": rate, "window": window,
        "acked": len(acked), "received_unique": len(got.seen),
        "duplicates": sum(c - 1 for c in got.seen.values()),
        "lost_acked": len(missing), "events_per_s": round(len(acked) / elapsed, 1),
        "broker_cpu_s": round(cpu, 2),
        "broker_cpu_us_per_event": round(cpu / max(len(acked), 1) * 1e6, 1),
    }
    if kill_time is not None and killed is not None:
        firsts = [f - kill_time for r in result.values() for f in r["first_ack_after"]
                  if f >= kill_time]
        moved = [d for d, r in result.items() if any(t >= kill_time for t in r["disconnects"])]
        after = sorted(t for t in got.times if t >= kill_time - 0.001)
        before = [t for t in got.times if t < kill_time]
        pause = max([after[0] - kill_time] + [b - a for a, b in itertools.pairwise(after)]
                    if after else [float("nan")])
        phase.update({
            "killed": killed.name, "devices_moved": len(moved),
            "failover_s_max": round(max(firsts), 2) if firsts else None,
            "failover_s_median": round(sorted(firsts)[len(firsts) // 2], 2) if firsts else None,
            "consumer_longest_pause_s": round(pause, 2), "received_before_kill": len(before),
        })
        print(json.dumps(phase), flush=True)
        try:
            phase["restart_s"] = round(cluster.restart_node(killed), 1)
        except (TimeoutError, RuntimeError) as exc:
            phase["restart_s"] = None
            phase["restart_error"] = str(exc)
    return phase


async def measure(kind: str, root: Path) -> dict[str, Any]:
    """Start one cluster, run the phases, stop it."""
    cluster: RabbitCluster | NatsCluster = (RabbitCluster(root) if kind == "rabbitmq"
                                            else NatsCluster(root))
    result: dict[str, Any] = {"broker": kind}
    try:
        result["cluster_start_s"] = round(cluster.start(), 1)
        await asyncio.sleep(2)
        result["idle_rss_mib_per_node"] = _rss_mib(cluster)
        got = _Received()
        stop, ready = asyncio.Event(), asyncio.Event()
        consumer = _rabbit_consume if isinstance(cluster, RabbitCluster) else _nats_consume
        task = asyncio.create_task(consumer(cluster, got, stop, ready))  # type: ignore[arg-type]
        await asyncio.wait_for(ready.wait(), 60)
        result["throughput"] = await _phase(cluster, got, devices=10, rate=0, window=50,
                                            duration=10, kill_at=None)
        print(json.dumps(result), flush=True)
        result["loaded_rss_mib_per_node"] = _rss_mib(cluster)
        got2 = _Received()
        got.seen, got.times = got2.seen, got2.times  # count the failover phase on its own
        result["failover"] = await _phase(cluster, got, devices=30, rate=20, window=20,
                                          duration=FAILOVER_S, kill_at=8)
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    finally:
        cluster.stop()
    return result


def main(kinds: list[str]) -> None:
    """Measure the given brokers and write the results."""
    results = {}
    for kind in kinds:
        root = Path(tempfile.gettempdir()) / f"dw-cluster-choice-{kind}"
        shutil.rmtree(root, ignore_errors=True)  # the last run's, kept for its logs
        results[kind] = asyncio.run(measure(kind, root))
        print(json.dumps(results[kind], indent=1), flush=True)
    # Each broker's latest run is kept: they are usually measured one at a time.
    path = RESULTS / "cluster_choice.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        results = {**json.loads(path.read_text())["results"], **results}
    write_result("cluster_choice", {"results": results})


if __name__ == "__main__":
    main(sys.argv[1:] or ["nats", "rabbitmq"])

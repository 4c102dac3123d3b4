"""100,000 malformed or random payloads through the real broker into a real server process.

Mosquitto runs on our configuration; ``doorwatch server run`` is a separate
process on SQLite. Several publisher processes, as a registered device and as
one that has broker credentials but is not registered, publish garbage bytes,
truncated JSON, wrong types, wrong schema versions, oversized payloads, other
devices' ids, almost-valid fields, messages on the wrong channel, payloads
that once escaped the decoder (deep nesting, giant integers, UTF-16) and a
sprinkle of valid events with known seqs, all at QoS 1. Then: the server is
still running and stores a fresh event; every malformed payload is exactly one
row in rejected_messages with a reason; every valid event is stored once.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from broker.messages import DeviceState, Event, EventKind, Heartbeat, Snapshot, Status, encode
from broker.topics import Channel, device_topic
from ground.timeutil import utcnow
from tests.conftest import Mosquitto, doorwatch_process, wait_for_log
from tests.faults.conftest import provision_fleet
from tests.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.faults, pytest.mark.slow]

TOTAL = 100_000
VALID = 1_000  # valid events of the registered device, seqs 1..VALID
# One publisher process per device: the broker pins a client id to its username, so a
# device has one connection (a second one would take over the first's session).
REUSED = 50  # events reusing stored seqs with new event ids, sent after the flood
OVERSIZED_EVERY = 500  # oversized payloads are big: keep them to a few hundred

# One message to publish: (publisher's device id, topic, payload, whether it is valid).
Message = tuple[str, str, bytes, bool]


def _event(device_id: str, seq: int, **changes: object) -> dict[str, object]:
    model = Event(device_id=device_id, seq=seq, time=utcnow(), kind=EventKind.EXIT, armed=True)
    return {**json.loads(encode(model)), **changes}


def _heartbeat(device_id: str) -> dict[str, object]:
    return json.loads(encode(Heartbeat(device_id=device_id, time=utcnow(), uptime_s=1.0,
                                       armed=True, last_seq=1, outbox_depth=0,
                                       firmware_version="0.1.0")))


def _status(device_id: str) -> dict[str, object]:
    return json.loads(encode(Status(device_id=device_id, state=DeviceState.ONLINE,
                                    time=utcnow())))


def _snapshot(device_id: str) -> dict[str, object]:
    model = Snapshot(device_id=device_id, event_id=Event(
        device_id=device_id, seq=1, time=utcnow(), kind=EventKind.EXIT, armed=True).event_id,
        taken_at=utcnow(), jpeg_b64="/9j/4AAQ")
    return json.loads(encode(model))


_BASES: dict[Channel, Callable[..., dict[str, object]]] = {
    Channel.EVENT: _event, Channel.HEARTBEAT: _heartbeat, Channel.STATUS: _status,
    Channel.SNAPSHOT: _snapshot}
# Replacements that keep the JSON well-formed but break the model.
_WRONG_FIELDS: list[tuple[str, object]] = [
    # Wrong JSON types are refused too (strict wire types, issue 17 item 10).
    ("seq", "12"), ("seq", 12.0), ("seq", True), ("armed", "true"), ("armed", 1),
    ("time", 1_780_000_000), ("v", True),
    ("seq", 0), ("seq", -5), ("seq", "twelve"), ("seq", 2**63), ("seq", 1.5),
    ("armed", "maybe"), ("kind", "teleported"), ("time", [2026]), ("time", "yesterday"),
    ("time", "2026-01-01T00:00"),
    ("time", "0001-01-01T00:00:00+05:00"), ("time", "9999-12-31T23:59:59-05:00"),
    ("event_id", "not-a-uuid"), ("detail", "x" * 2001), ("episode", {"confidence": 2}),
    ("tamper", "gnomes"), ("type", "command"), ("device_id", None), ("uptime_s", -1),
    ("state", "asleep"), ("jpeg_b64", 7), ("surprise", 1), ("type", None),
]


def _malformed(rng: random.Random, device_id: str, channel: Channel) -> bytes:
    """A payload the server must reject, of a randomly chosen kind."""
    base = _BASES[channel](device_id) if channel is not Channel.EVENT else _event(
        device_id, rng.randint(1, 10**6))
    kind = rng.randrange(11)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))  # garbage, often not even UTF-8
    if kind == 1:
        text = json.dumps(base).encode()
        return text[: rng.randrange(0, len(text) - 1)]  # truncated JSON
    if kind == 2:
        return json.dumps({**base, "v": rng.choice([0, 2, "1", None, 1.5, [1]])}).encode()
    if kind == 3:
        broken = dict(base)
        broken.pop("v")  # a missing version is not a default
        return json.dumps(broken).encode()
    if kind == 4:
        return json.dumps({**base, "device_id": "someone-else"}).encode()  # spoofed id
    if kind == 5:
        # Another channel's message on this channel.
        other = rng.choice([c for c in Channel if c is not channel])
        return json.dumps(_BASES[other](device_id) if other is not Channel.EVENT
                          else _event(device_id, 1)).encode()
    if kind == 6:
        return json.dumps(rng.choice([[1, 2], "event", 42, None, True, {}])).encode()
    if kind == 7:
        return rng.choice([b"[" * 20_000, b'{"v":1,"seq":' + b"9" * 5000 + b"}",
                           json.dumps(base).encode("utf-16"), b"\xef\xbb\xbf{}", b"NaN"])
    # Almost valid: one field wrong, or a well-formed-looking field that is not.
    name, value = rng.choice(_WRONG_FIELDS)
    if name not in base and name not in ("surprise", "type", "device_id"):
        name, value = "surprise", 1
    return json.dumps({**base, name: value}).encode()


def _unknown_device_message(rng: random.Random, device_id: str, channel: Channel) -> bytes:
    """Valid in form, but from a device the server does not know: rejected as unknown."""
    if channel is Channel.EVENT:
        return json.dumps(_event(device_id, rng.randint(1, 10**6))).encode()
    return json.dumps(_BASES[channel](device_id)).encode()


def build_flood(registered: str, stranger: str, seed: int = 20200123) -> list[Message]:
    """TOTAL messages: VALID valid events, the rest to be rejected, shuffled."""
    rng = random.Random(seed)
    messages: list[Message] = [
        (registered, device_topic(registered, Channel.EVENT),
         json.dumps(_event(registered, seq, kind="handover")).encode(), True)
        for seq in range(1, VALID + 1)
    ]
    channels = list(Channel)
    oversized = b'{"v":1,"detail":"' + b"x" * (70 * 1024) + b'"}'
    while len(messages) < TOTAL:
        device_id = registered if rng.random() < 0.7 else stranger
        channel = rng.choice(channels)
        if len(messages) % OVERSIZED_EVERY == 0 and channel is not Channel.SNAPSHOT:
            payload = oversized
        elif device_id == stranger and rng.random() < 0.3:
            payload = _unknown_device_message(rng, device_id, channel)
        elif channel is Channel.SNAPSHOT and rng.random() < 0.05:
            payload = json.dumps({**_snapshot(device_id), "jpeg_b64": "!!not base64!!"}).encode()
        else:
            payload = _malformed(rng, device_id, channel)
        messages.append((device_id, device_topic(device_id, channel), payload, False))
    rng.shuffle(messages)
    return messages


def _publish_all(broker: Mosquitto, passwords: dict[str, str], messages: list[Message],
                 client_suffix: str) -> int:
    """Publish ``messages`` at QoS 1, one connection per device; return PUBACKs received."""
    clients: dict[str, mqtt.Client] = {}
    acked = 0
    done = threading.Condition()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        with done:
            acked += 1
            done.notify_all()

    for device_id, password in passwords.items():
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"{device_id}-flood-{client_suffix}")
        client.username_pw_set(device_id, password)
        client.max_inflight_messages_set(1000)
        client.on_publish = on_publish
        broker.connect_device(client)
        client.loop_start()
        clients[device_id] = client
    for sent, (device_id, topic, payload, _valid) in enumerate(messages):
        # At most a window of unacknowledged publishes: paho's own queue beyond its
        # in-flight window stalled over TLS (no PUBACK for the last ~1,700 of 50,000).
        with done:
            done.wait_for(lambda sent=sent: sent - acked < 500, timeout=60)
        clients[device_id].publish(topic, payload, qos=1)
    with done:
        # One TLS connection per device (the broker pins client ids to usernames), so
        # two publishers now where four plaintext ones were: give them longer on a busy box.
        done.wait_for(lambda: acked >= len(messages), timeout=240)
    for client in clients.values():
        client.disconnect()
        client.loop_stop()
    return acked


def _publisher_process(broker: Mosquitto, passwords: dict[str, str], messages: list[Message],
                       index: int, results: multiprocessing.Queue[int]) -> None:
    results.put(_publish_all(broker, passwords, messages, str(index)))


def _counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db, timeout=10) as conn:
        rejected = conn.execute("SELECT COUNT(*) FROM rejected_messages").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return int(rejected), int(events)


def _start_server(tmp_path: Path, broker: Mosquitto, db: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / "server.toml"
    config.write_text(tomli_w.dumps({
        "database_url": f"sqlite:///{db}", "data_dir": str(tmp_path / "server"),
        "instance": "flood",
        "mqtt": {"host": "127.0.0.1", "port": broker.port,
                 "password": broker.broker.server_password,
                 "client_id": "doorwatch-server-flood"},
        # Every malformed payload must be a row here (~50,000 per device): past the
        # default daily row budget they would only be counted.
        "ingest": {"rejected_rows_per_device_day": 1_000_000},
    }))
    log = tmp_path / "server.log"
    process = doorwatch_process("server", "run", "-c", str(config), log=log)
    assert wait_for_log(log, '"msg": "subscribed"', timeout=60), log.read_text()[-3000:]
    return process


@pytest.mark.timeout(420)
def test_hundred_thousand_malformed_payloads_are_each_rejected_and_the_server_lives(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    db = tmp_path / "server.db"
    creds = json.loads(provision_fleet(mosquitto, f"sqlite:///{db}", 1, tmp_path,
                                       prefix="flood").read_text())
    registered = next(iter(creds))
    stranger = "stranger-001"  # broker credentials, never registered with the server
    passwords = {registered: creds[registered], stranger: mosquitto.add_device(stranger)}
    messages = build_flood(registered, stranger)
    malformed = sum(1 for *_, valid in messages if not valid)
    assert (len(messages), malformed) == (TOTAL, TOTAL - VALID)
    valid_ids = {json.loads(payload)["event_id"] for *_, payload, valid in messages if valid}

    server = _start_server(tmp_path, mosquitto, db)
    try:
        started = time.monotonic()
        context = multiprocessing.get_context("fork")
        results: multiprocessing.Queue[int] = context.Queue()
        workers = [context.Process(target=_publisher_process, args=(
            mosquitto, {device: passwords[device]},
            [m for m in messages if m[0] == device], i, results))
            for i, device in enumerate(passwords)]
        for worker in workers:
            worker.start()
        acked = sum(results.get(timeout=260) for _ in workers)
        for worker in workers:
            worker.join(timeout=10)
        published = time.monotonic() - started
        assert acked == TOTAL, "the broker did not acknowledge every publish"

        # Returns early if the server died: the next line says so with its log.
        wait_until(lambda: server.poll() is not None or sum(_counts(db)) >= TOTAL,
                   f"all {TOTAL} flood messages stored or rejected", 150, every=0.2,
                   detail=lambda: f"(stored, rejected) = {_counts(db)}")
        ingested = time.monotonic() - started
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]

        # Still answering: a valid event sent after the flood is stored; records that
        # reuse stored seqs under new event ids are rejected, not dropped as duplicates.
        after: list[Message] = [
            (registered, device_topic(registered, Channel.EVENT),
             json.dumps(_event(registered, seq)).encode(), False)
            for seq in range(1, REUSED + 1)]
        after.append((registered, device_topic(registered, Channel.EVENT),
                      json.dumps(_event(registered, VALID + 1)).encode(), True))
        assert _publish_all(mosquitto, {registered: passwords[registered]}, after,
                            "after") == len(after)
        wait_until(lambda: sum(_counts(db)) >= TOTAL + len(after),
                   "the messages sent after the flood stored or rejected", 30, every=0.1,
                   detail=lambda: f"(stored, rejected) = {_counts(db)}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    with sqlite3.connect(db) as conn:
        rejected, empty_reasons = conn.execute(
            "SELECT COUNT(*), SUM(CASE WHEN reason = '' OR reason IS NULL THEN 1 ELSE 0 END) "
            "FROM rejected_messages").fetchone()
        stored = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events "
            "WHERE device_id = ?", (registered,)).fetchone()
        stored_ids = {row[0] for row in conn.execute(
            "SELECT event_id FROM events WHERE seq <= ?", (VALID,))}
        others = conn.execute("SELECT COUNT(*) FROM events WHERE device_id != ?",
                              (registered,)).fetchone()[0]
        reasons = conn.execute(
            "SELECT substr(reason, 1, 40) AS r, COUNT(*) FROM rejected_messages "
            "GROUP BY r ORDER BY 2 DESC LIMIT 12").fetchall()
        fallbacks = conn.execute("SELECT COUNT(*) FROM rejected_messages "
                                 "WHERE reason LIKE 'processing failed%'").fetchone()[0]
    print(f"\nflood: {TOTAL} messages published in {published:.1f} s "
          f"({TOTAL / published:.0f}/s), all stored or rejected after {ingested:.1f} s "
          f"({TOTAL / ingested:.0f}/s); rejected={rejected}")
    for reason, count in reasons:
        print(f"  {count:6d}  {reason}")
    assert rejected == malformed + REUSED
    assert stored_ids == valid_ids
    assert empty_reasons == 0
    # No payload went down the slow "batch failed, retry one by one" path.
    assert fallbacks == 0
    assert tuple(stored) == (VALID + 1, VALID + 1, 1, VALID + 1)
    assert others == 0

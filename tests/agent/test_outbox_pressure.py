"""The outbox under pressure: budget by priority, full disk, memory backlog."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.link import AgentLink
from agent.outbox import Outbox, Priority
from agent.recorder import Recorder
from broker.messages import Event, EventKind, utc_now
from firmware_config.device_config import MqttLinkSettings
from ground.errors import StorageError

DEVICE = "door-7"


async def _page_count(outbox: Outbox) -> int:
    rows = await outbox._conn.execute_fetchall("PRAGMA page_count")
    return int(next(iter(rows))[0])


def _event(seq: int) -> Event:
    return Event(device_id=DEVICE, seq=seq, time=utc_now(), kind=EventKind.EXIT, armed=True)


async def test_budget_drops_heartbeats_then_snapshots_never_events(tmp_path: Path) -> None:
    outbox = await Outbox.connect(tmp_path / "o.db", budget_bytes=10_000)
    for _ in range(4):
        assert await outbox.append_unsequenced(DEVICE, "hb", b"h" * 1000, Priority.HEARTBEAT)
    for _ in range(4):
        assert await outbox.append_unsequenced(DEVICE, "snap", b"s" * 1500, Priority.SNAPSHOT)
    assert outbox.stored_bytes == 10_000
    assert not outbox.exhausted
    await outbox.append(DEVICE, "ev", lambda s: b"e" * 3000)  # room made from heartbeats only
    assert outbox.evicted[Priority.HEARTBEAT] == 3
    assert outbox.evicted[Priority.SNAPSHOT] == 0
    for _ in range(5):
        await outbox.append(DEVICE, "ev", lambda s: b"e" * 3000)
    # Heartbeats and snapshots are gone; events exceed the budget but are all kept.
    topics = [r.topic for r in await outbox.pending(100)]
    assert topics.count("ev") == 6
    assert "hb" not in topics
    assert "snap" not in topics
    assert outbox.exhausted
    # A new heartbeat does not push anything out: it is dropped itself.
    assert not await outbox.append_unsequenced(DEVICE, "hb", b"h" * 10, Priority.HEARTBEAT)
    assert await outbox.last_seq(DEVICE) == 6
    await outbox.delete([(DEVICE, seq) for seq in range(1, 7)])
    assert not outbox.exhausted
    assert outbox.stored_bytes == 0
    await outbox.close()


async def test_heartbeats_keep_only_the_latest(tmp_path: Path) -> None:
    outbox = await Outbox.connect(tmp_path / "o.db")
    for n in range(10):
        await outbox.append_unsequenced(DEVICE, "hb", str(n).encode(), Priority.HEARTBEAT,
                                        keep_last=3)
    assert [r.payload for r in await outbox.pending(100)] == [b"7", b"8", b"9"]
    await outbox.close()


async def test_full_disk_is_a_storage_error_and_nothing_half_written(tmp_path: Path) -> None:
    outbox = await Outbox.connect(tmp_path / "o.db")
    await outbox.append(DEVICE, "ev", lambda s: b"x")
    await outbox.limit_pages(await _page_count(outbox))

    async def fill() -> None:
        for _ in range(100):
            await outbox.append(DEVICE, "ev", lambda s: b"y" * 20_000)

    with pytest.raises(StorageError, match="full"):
        await fill()
    # No seq allocated without its record.
    assert await outbox.last_seq(DEVICE) == await outbox.depth()
    await outbox.close()


async def test_recorder_keeps_events_in_memory_while_the_disk_is_full(tmp_path: Path) -> None:
    outbox = await Outbox.connect(tmp_path / "o.db")
    link = AgentLink(DEVICE, MqttLinkSettings(port=1), outbox)
    recorder = Recorder(DEVICE, outbox, link, backlog=3)
    assert await recorder.record(_event) == 1
    pages = await _page_count(outbox)
    await outbox.limit_pages(pages)
    big = "z" * 1900

    def bulky(seq: int) -> Event:
        return Event(device_id=DEVICE, seq=seq, time=utc_now(), kind=EventKind.TAMPER,
                     armed=True, detail=big)

    for _ in range(5):
        await recorder.record(bulky)
    assert recorder.backlog == 3
    assert recorder.lost >= 1
    alarms = recorder.alarms()
    assert any(a.startswith("outbox_unwritable") for a in alarms)
    assert any(a.startswith("events_lost") for a in alarms)
    await outbox.limit_pages(1_000_000)  # space again
    await recorder.flush()
    assert recorder.backlog == 0
    assert recorder.storage_error is None
    assert await outbox.depth() == await outbox.last_seq(DEVICE)
    await outbox.close()


async def test_unopenable_outbox_falls_back_to_memory_continuing_the_seq(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    outbox = await Outbox.connect(folder / "outbox.db")
    await outbox.append(DEVICE, "ev", lambda s: b"x")
    await outbox.append(DEVICE, "ev", lambda s: b"x")
    await outbox.close()
    # SQLite cannot create its write-ahead log: the same failure as a read-only folder
    # (which root, running these tests in CI containers, could still write to).
    (folder / "outbox.db-wal").mkdir()
    memory = Outbox(folder / "outbox.db", budget_bytes=None)
    reason = await memory.open_resilient(DEVICE)
    assert reason is not None
    assert "unable to open" in reason
    assert await memory.append(DEVICE, "ev", lambda s: b"y") == 3
    await memory.close()

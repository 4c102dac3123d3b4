"""The agent's durable outbox."""

from __future__ import annotations

import contextlib
from pathlib import Path

from agent.outbox import Outbox


async def test_seq_survives_reopen_and_never_repeats(tmp_path: Path) -> None:
    box = await Outbox.connect(tmp_path / "o.db")
    seqs = [await box.append("d-1", "t", lambda s: str(s).encode()) for _ in range(3)]
    await box.delete([("d-1", 1), ("d-1", 2), ("d-1", 3)])
    await box.close()
    again = await Outbox.connect(tmp_path / "o.db")
    assert seqs == [1, 2, 3]
    assert await again.append("d-1", "t", lambda s: b"x") == 4
    assert await again.last_seq("d-1") == 4
    await again.close()


async def test_pending_skips_records_in_flight_and_keeps_order(tmp_path: Path) -> None:
    box = await Outbox.connect(tmp_path / "o.db")
    for device in ("a-1", "b-1", "a-1"):
        await box.append(device, f"topic/{device}", lambda s: str(s).encode())
    pending = await box.pending(10, exclude=[("a-1", 1)])
    assert [(r.device_id, r.seq, r.payload) for r in pending] == [("b-1", 1, b"1"),
                                                                  ("a-1", 2, b"2")]
    assert await box.depth() == 3
    assert await box.depth("a-1") == 2
    await box.close()


async def test_failed_build_allocates_nothing(tmp_path: Path) -> None:
    box = await Outbox.connect(tmp_path / "o.db")

    def broken(seq: int) -> bytes:
        raise ValueError("model did not validate")

    with contextlib.suppress(ValueError):
        await box.append("d-1", "t", broken)
    assert await box.last_seq("d-1") == 0
    assert await box.depth() == 0
    await box.close()


async def test_pending_for_one_device_never_returns_anothers_records(tmp_path: Path) -> None:
    box = await Outbox.connect(tmp_path / "o.db")
    for device in ("a-1", "b-1", "a-1", "b-1"):
        await box.append(device, f"topic/{device}", lambda s: str(s).encode())
    mine = await box.pending(10, device_id="b-1")
    assert [(r.device_id, r.seq) for r in mine] == [("b-1", 1), ("b-1", 2)]
    await box.close()

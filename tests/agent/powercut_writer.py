"""The agent's storage path under a stream of door events, reporting what it counted as stored.

    python -m tests.agent.powercut_writer DATA_DIR EVENTS [--unsafe]

Drives the agent's own objects the way ``agent.service`` does: an episode is
persisted when the door opens (``save_episode``), updated with evidence, and
its event is appended to the outbox in the same transaction that forgets it;
heartbeats go in unsequenced under a byte budget; PUBACKs delete records; the
armed flag changes now and then (``DeviceState``). After each call returns,
one JSON line on stdout says what the agent now counts as stored. The power
cut test compares these lines with what is on disk after the cut.

``--unsafe`` opens the outbox with ``synchronous=OFF`` (the control: on a
file system that really loses unsynced writes, that must lose something).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.classify import EpisodeEvidence
from agent.episode_store import OpenEpisode, save_episode
from agent.outbox import Outbox, Priority
from agent.state import DeviceState

DEVICE = "door-pc"


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Write ``EVENTS`` door events into ``DATA_DIR``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("events", type=int)
    parser.add_argument("--unsafe", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(_write(args.data_dir, args.events, unsafe=args.unsafe))


async def _write(data_dir: Path, events: int, *, unsafe: bool) -> None:
    outbox = Outbox(data_dir / "outbox.db", budget_bytes=6000)
    degraded = await outbox.open_resilient(DEVICE)
    assert degraded is None, degraded
    try:
        if unsafe:
            await outbox._conn.execute("PRAGMA synchronous=OFF")
        await _stream(outbox, DeviceState(data_dir / "state.json", armed_default=True), events)
    finally:
        # Also after the cut: the connection's thread would keep this process alive.
        await outbox.close()
    _say(done=True)


async def _stream(outbox: Outbox, state: DeviceState, events: int) -> None:
    _say(opened=True, last_seq=await outbox.last_seq(DEVICE))
    for i in range(events):
        episode = OpenEpisode.new(datetime.now(UTC), door_sensor=True)
        if not await save_episode(outbox, episode):
            raise SystemExit("episode not saved")
        _say(episode_saved=episode.key)
        episode = episode.with_evidence(EpisodeEvidence(tracks=1, frames=30 + i))
        if not await save_episode(outbox, episode):
            raise SystemExit("episode not saved")
        payload = {"kind": "exit", "episode": str(episode.episode_id), "pad": "x" * 200}
        seq = await outbox.append(DEVICE, f"doorwatch/v1/dev/{DEVICE}/event",
                                  lambda s, p=payload: json.dumps({**p, "seq": s}).encode(),
                                  clear_state=episode.key)
        _say(stored=seq, episode_closed=episode.key)
        if i % 2 == 0:
            await outbox.append_unsequenced(DEVICE, f"doorwatch/v1/dev/{DEVICE}/heartbeat",
                                            b"h" * 300, Priority.HEARTBEAT, keep_last=3)
        if i % 5 == 4:
            # PUBACK for everything but the newest two events.
            pending = [r for r in await outbox.pending(100, device_id=DEVICE) if r.seq > 0]
            acked = [r.seq for r in pending[:-2]]
            await outbox.delete((DEVICE, s) for s in acked)
            _say(acked=acked)
        if i % 7 == 3:
            _say(arming=not state.armed)
            state.set_armed(not state.armed)
            if state.write_error is not None:
                raise SystemExit(f"state not saved: {state.write_error}")
            _say(armed=state.armed)


if __name__ == "__main__":
    main()

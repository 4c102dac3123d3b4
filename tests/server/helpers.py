"""Building blocks for server tests: settings, a seeded household, events through ingest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.messages import DeviceState, Event, EventKind, Heartbeat, Status, TamperKind, encode
from broker.topics import Channel, device_topic
from server.config import ServerSettings, load_server_settings
from server.db.base import Database
from server.domain import devices, households, people
from server.ingest.ingestor import BatchResult, Ingestor
from server.mqtt.inbound import InboundMessage

RECEIVER_URL = "json://127.0.0.1:9/notify"


def settings_for(database_url: str, **overrides: Any) -> ServerSettings:
    """Server settings on ``database_url`` (no broker needed for rule tests)."""
    base: dict[str, Any] = {"database_url": database_url, "instance": "test"}
    base.update(overrides)
    return load_server_settings(None, **base)


@dataclass
class Seeded:
    """IDs of what :func:`seed` created."""

    grid: int
    supervisor: int
    worker: int
    household: int
    device: str


async def seed(
    db: Database, *, device: str = "door-1", start: datetime | None = None,
    end: datetime | None = None, armed: bool = True, worker_language: str = "zh_CN",
    url: str = RECEIVER_URL, supervisor_url: str | None = None,
) -> Seeded:
    """A grid with a supervisor, a worker, one household (with a period if given), one device."""
    supervisor = await people.add_worker(db, people.WorkerIn(
        name="李主任", role=people.Role.SUPERVISOR, language="en",
        apprise_urls=[supervisor_url or url]), actor="test")
    grid = await people.add_grid(db, people.GridIn(name=f"grid-{device}", supervisor_id=supervisor),
                                 actor="test")
    worker = await people.add_worker(db, people.WorkerIn(
        name="王网格", language=worker_language, apprise_urls=[url], grid_id=grid), actor="test")
    household = await households.add_household(db, households.HouseholdIn(
        name="张三家", address="幸福路 8 号 3-502", grid_id=grid, worker_id=worker,
        members=["张三", "李四"], quarantine_start=start, quarantine_end=end, armed=armed),
        actor="test")
    await devices.register_device(db, device, household_id=household, actor="test")
    return Seeded(grid, supervisor, worker, household, device)


class EventFeeder:
    """Feeds device messages through the real ingest path (validation, rules, one transaction)."""

    def __init__(self, db: Database, settings: ServerSettings):
        self.ingestor = Ingestor(db, settings)
        self.seq: dict[str, int] = {}

    def event(self, device: str, kind: EventKind, at: datetime, **fields: Any) -> InboundMessage:
        """An event message as the agent would publish it (next seq)."""
        seq = fields.pop("seq", None) or self.seq.get(device, 0) + 1
        self.seq[device] = max(self.seq.get(device, 0), seq)
        model = Event(device_id=device, seq=seq, time=at, kind=kind, armed=True, **fields)
        return InboundMessage(topic=device_topic(device, Channel.EVENT), payload=encode(model))

    async def send(self, device: str, kind: EventKind, at: datetime, **fields: Any) -> BatchResult:
        """Ingest one event."""
        if kind is EventKind.TAMPER:
            fields.setdefault("tamper", TamperKind.CAMERA_COVERED)
        return await self.ingestor.process([self.event(device, kind, at, **fields)])

    async def heartbeat(self, device: str, at: datetime) -> None:
        """Ingest a heartbeat received at ``at``."""
        model = Heartbeat(device_id=device, time=at, uptime_s=1, armed=True, last_seq=0,
                          outbox_depth=0, firmware_version="test")
        await self.ingestor.process([InboundMessage(
            topic=device_topic(device, Channel.HEARTBEAT), payload=encode(model),
            received_at=_ts(at))])

    async def status(self, device: str, state: DeviceState, at: datetime) -> None:
        """Ingest a retained status (``offline`` = the Last Will) received at ``at``."""
        model = Status(device_id=device, state=state, time=at - timedelta(hours=1))
        await self.ingestor.process([InboundMessage(
            topic=device_topic(device, Channel.STATUS), payload=encode(model),
            received_at=_ts(at))])


def _ts(moment: datetime) -> str:
    from ground.timeutil import to_ts

    return to_ts(moment)


async def rows(db: Database, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """All rows of a query."""
    return await db.fetch_all(sql, params)


async def scalar(db: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    """First column of the first row, as an int."""
    row = await db.fetch_one(sql, params)
    return int(next(iter(row.values()))) if row else 0

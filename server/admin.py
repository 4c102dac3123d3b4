"""Administrative operations on the server's data (used by the CLI, the demo and tests)."""

from __future__ import annotations

import json

from doorwatch.timeutil import now_ts
from server.audit import audit
from server.db.base import Database

__all__ = ["add_household", "add_worker", "register_device"]


async def add_worker(
    db: Database, name: str, *, apprise_urls: list[str], language: str = "zh_CN",
    phone: str | None = None, actor: str = "admin",
) -> int:
    """Create a grid worker who is notified through ``apprise_urls``; return the id."""
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO workers (name, phone, language, apprise_urls, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (name, phone, language, json.dumps(apprise_urls), now_ts()),
        )
        assert row is not None
        await audit(tx, actor, "worker.add", f"worker:{row['id']}", name)
        return int(row["id"])


async def add_household(
    db: Database, name: str, address: str, *, worker_id: int | None, armed: bool = True,
    actor: str = "admin",
) -> int:
    """Create a household under quarantine watch; return the id."""
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            "INSERT INTO households (name, address, worker_id, armed, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (name, address, worker_id, int(armed), now_ts()),
        )
        assert row is not None
        await audit(tx, actor, "household.add", f"household:{row['id']}", name)
        return int(row["id"])


async def register_device(
    db: Database, device_id: str, *, household_id: int | None, actor: str = "admin"
) -> None:
    """Register (or re-assign) a device so the server accepts its messages."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO devices (device_id, household_id, registered_at) VALUES (?, ?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET household_id = excluded.household_id",
            (device_id, household_id, now_ts()),
        )
        await audit(tx, actor, "device.register", f"device:{device_id}",
                    f"household:{household_id}")

"""Short-hand administration used by the demo, benchmarks and tests.

Thin wrappers over :mod:`server.domain` with the keyword arguments the first
version had; new code should call the domain modules directly.
"""

from __future__ import annotations

from server.db.base import Database
from server.domain import devices, households, people

__all__ = ["add_household", "add_worker", "register_device"]


async def add_worker(
    db: Database, name: str, *, apprise_urls: list[str], language: str = "zh_CN",
    phone: str | None = None, actor: str = "admin",
) -> int:
    """Create a grid worker who is notified through ``apprise_urls``; return the id."""
    worker = people.WorkerIn.model_validate(
        {"name": name, "apprise_urls": apprise_urls, "language": language, "phone": phone})
    return await people.add_worker(db, worker, actor=actor)


async def add_household(
    db: Database, name: str, address: str, *, worker_id: int | None, armed: bool = True,
    actor: str = "admin",
) -> int:
    """Create a household without a quarantine period, armed or not; return the id."""
    household = households.HouseholdIn(name=name, address=address, worker_id=worker_id,
                                       armed=armed)
    return await households.add_household(db, household, actor=actor)


async def register_device(
    db: Database, device_id: str, *, household_id: int | None, actor: str = "admin"
) -> None:
    """Register a device (and assign it) so the server accepts its messages."""
    await devices.register_device(db, device_id, household_id=household_id, actor=actor)

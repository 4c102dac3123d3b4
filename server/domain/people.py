"""Grid workers, supervisors and grids.

A grid (网格) is a group of households looked after by its grid workers; its
supervisor is notified when a worker does not acknowledge an incident in time.
Workers and supervisors are notified through their own Apprise URLs, in their
own language.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.i18n import Language, normalize_language
from ground.timeutil import now_ts
from server.db.base import Database, Row, Transaction
from server.domain.audit import audit
from server.domain.common import dumps, fetch_required, loads_list, when
from server.domain.errors import InvalidChangeError
from server.notify.privacy import private_url

__all__ = [
    "Grid",
    "GridIn",
    "GridUpdate",
    "Role",
    "Worker",
    "WorkerIn",
    "WorkerUpdate",
    "add_grid",
    "add_worker",
    "check_apprise_url",
    "find_grid",
    "get_grid",
    "get_worker",
    "list_grids",
    "list_workers",
    "update_grid",
    "update_worker",
]


class Role(StrEnum):
    """What a person does in the programme."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


def check_apprise_url(url: str) -> str:
    """Refuse a URL Apprise cannot send to (typos in CSV files are common)."""
    import apprise  # heavy: only when a URL is actually checked

    if not apprise.Apprise().add(url):
        raise ValueError(f"Apprise does not understand the URL {private_url(url)!r}")
    return url


class WorkerIn(BaseModel):
    """A new grid worker or supervisor."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(None, max_length=40)
    language: Language = Field("zh_CN", description="Language of their notifications")
    role: Role = Role.WORKER
    apprise_urls: list[str] = Field(default_factory=list, description="Where they are notified")
    grid_id: int | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> str:
        return normalize_language(str(value)) if value else "zh_CN"

    @field_validator("apprise_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [check_apprise_url(u.strip()) for u in value if u.strip()]


class WorkerUpdate(BaseModel):
    """Fields of a worker to change (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=100)
    phone: str | None = Field(None, max_length=40)
    language: Language | None = None
    role: Role | None = None
    apprise_urls: list[str] | None = None
    grid_id: int | None = None
    active: bool | None = None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> str | None:
        return normalize_language(str(value)) if value else None

    @field_validator("apprise_urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_apprise_url(u.strip()) for u in value]


class Worker(BaseModel):
    """A grid worker or supervisor as stored."""

    id: int
    name: str
    phone: str | None
    language: Language
    role: Role
    apprise_urls: list[str]
    grid_id: int | None
    active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Worker:
        """Build from a ``workers`` row."""
        return cls(
            id=int(row["id"]), name=row["name"], phone=row["phone"],
            language=normalize_language(row["language"]), role=Role(row["role"]),
            apprise_urls=loads_list(row["apprise_urls"]),
            grid_id=None if row["grid_id"] is None else int(row["grid_id"]),
            active=bool(row["active"]), created_at=when(row["created_at"]),
        )


class GridIn(BaseModel):
    """A new grid."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    supervisor_id: int | None = None
    notes: str | None = Field(None, max_length=2000)


class GridUpdate(BaseModel):
    """Fields of a grid to change (None = keep)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=100)
    supervisor_id: int | None = None
    notes: str | None = Field(None, max_length=2000)


class Grid(BaseModel):
    """A grid as stored."""

    id: int
    name: str
    supervisor_id: int | None
    notes: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Grid:
        """Build from a ``grids`` row."""
        return cls(
            id=int(row["id"]), name=row["name"],
            supervisor_id=None if row["supervisor_id"] is None else int(row["supervisor_id"]),
            notes=row["notes"], created_at=when(row["created_at"]),
        )


_WORKER_COLUMNS = "id, name, phone, language, role, apprise_urls, grid_id, active, created_at"


async def _check_grid(tx: Transaction, grid_id: int | None) -> None:
    if grid_id is not None:
        await fetch_required(tx, "grid", grid_id, "SELECT id FROM grids WHERE id = ?", (grid_id,))


async def add_worker(db: Database, worker: WorkerIn, *, actor: str) -> int:
    """Create a worker or supervisor; return the id."""
    async with db.transaction() as tx:
        return await add_worker_tx(tx, worker, actor=actor)


async def add_worker_tx(tx: Transaction, worker: WorkerIn, *, actor: str) -> int:
    """:func:`add_worker` inside the caller's transaction (CSV import)."""
    await _check_grid(tx, worker.grid_id)
    row = await tx.fetch_one(
        "INSERT INTO workers (name, phone, language, role, apprise_urls, grid_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (worker.name, worker.phone, worker.language, worker.role.value,
         dumps(worker.apprise_urls), worker.grid_id, now_ts()),
    )
    assert row is not None
    await audit(tx, actor, "worker.add", f"worker:{row['id']}",
                f"{worker.role.value} {worker.name}")
    return int(row["id"])


async def get_worker(db: Database | Transaction, worker_id: int) -> Worker:
    """One worker or supervisor (:class:`NotFoundError` if there is none)."""
    row = await fetch_required(
        db, "worker", worker_id,
        f"SELECT {_WORKER_COLUMNS} FROM workers WHERE id = ?", (worker_id,),  # noqa: S608
    )
    return Worker.from_row(row)


async def list_workers(
    db: Database, *, role: Role | None = None, grid_id: int | None = None,
    include_inactive: bool = False,
) -> list[Worker]:
    """Workers and supervisors, optionally of one role and/or grid, by name."""
    where: list[str] = ["1 = 1"]
    params: list[object] = []
    if role is not None:
        where.append("role = ?")
        params.append(role.value)
    if grid_id is not None:
        where.append("grid_id = ?")
        params.append(grid_id)
    if not include_inactive:
        where.append("active = 1")
    rows = await db.fetch_all(
        f"SELECT {_WORKER_COLUMNS} FROM workers WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
        "ORDER BY name, id", params,
    )
    return [Worker.from_row(r) for r in rows]


async def update_worker(
    db: Database, worker_id: int, change: WorkerUpdate, *, actor: str
) -> Worker:
    """Change some fields of a worker; the audit record lists which."""
    fields = change.model_dump(exclude_none=True)
    async with db.transaction() as tx:
        await get_worker(tx, worker_id)
        if "grid_id" in fields:
            await _check_grid(tx, fields["grid_id"])
        if "role" in fields:
            fields["role"] = Role(fields["role"]).value
        if "apprise_urls" in fields:
            fields["apprise_urls"] = dumps(fields["apprise_urls"])
        if "active" in fields:
            fields["active"] = int(fields["active"])
        if fields:
            sets = ", ".join(f"{name} = ?" for name in fields)
            await tx.execute(
                f"UPDATE workers SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 - names from the model
                (*fields.values(), now_ts(), worker_id),
            )
            if fields.get("active") == 0:
                # Their dashboard users lose access at once (checked on every request);
                # ending the sessions too means enabling the worker again does not
                # bring old sessions back to life.
                await tx.execute("DELETE FROM web_sessions WHERE user_id IN "
                                 "(SELECT id FROM users WHERE worker_id = ?)", (worker_id,))
            await audit(tx, actor, "worker.update", f"worker:{worker_id}", ", ".join(fields))
        return await get_worker(tx, worker_id)


async def add_grid(db: Database, grid: GridIn, *, actor: str) -> int:
    """Create a grid; return the id. Names are unique."""
    async with db.transaction() as tx:
        if grid.supervisor_id is not None:
            await _check_supervisor(tx, grid.supervisor_id)
        row = await tx.fetch_one(
            "INSERT INTO grids (name, supervisor_id, notes, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING RETURNING id",
            (grid.name, grid.supervisor_id, grid.notes, now_ts()),
        )
        if row is None:
            raise InvalidChangeError("grid", grid.name, "name_taken")
        await audit(tx, actor, "grid.add", f"grid:{row['id']}", grid.name)
        return int(row["id"])


async def _check_supervisor(tx: Transaction, worker_id: int) -> None:
    worker = await get_worker(tx, worker_id)
    if worker.role is not Role.SUPERVISOR:
        raise InvalidChangeError("worker", worker_id, "not_a_supervisor")


async def get_grid(db: Database | Transaction, grid_id: int) -> Grid:
    """One grid (:class:`NotFoundError` if there is none)."""
    row = await fetch_required(db, "grid", grid_id, "SELECT * FROM grids WHERE id = ?", (grid_id,))
    return Grid.from_row(row)


async def find_grid(db: Database | Transaction, name: str) -> Grid | None:
    """The grid called ``name``, if any."""
    row = await db.fetch_one("SELECT * FROM grids WHERE name = ?", (name,))
    return None if row is None else Grid.from_row(row)


async def list_grids(db: Database) -> list[Grid]:
    """Every grid, by name."""
    return [Grid.from_row(r) for r in await db.fetch_all("SELECT * FROM grids ORDER BY name")]


async def update_grid(db: Database, grid_id: int, change: GridUpdate, *, actor: str) -> Grid:
    """Rename a grid, change its supervisor or notes."""
    fields = change.model_dump(exclude_none=True)
    async with db.transaction() as tx:
        await get_grid(tx, grid_id)
        if "supervisor_id" in fields:
            await _check_supervisor(tx, fields["supervisor_id"])
        if fields:
            sets = ", ".join(f"{name} = ?" for name in fields)
            await tx.execute(f"UPDATE grids SET {sets} WHERE id = ?",  # noqa: S608 - model fields
                             (*fields.values(), grid_id))
            await audit(tx, actor, "grid.update", f"grid:{grid_id}", ", ".join(fields))
        return await get_grid(tx, grid_id)

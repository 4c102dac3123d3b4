"""Import households and workers from the CSV lists grid offices keep.

Every row is checked on its own (fields, references to grids and workers,
duplicates); a good row is written in its own transaction, a bad one is
reported with its line number, the field and what is wrong, and never stops
the others. ``dry_run`` checks everything and writes nothing. Headers may be
English or Chinese (``name``/``户主``, ``address``/``地址`` ...); files may be
UTF-8 (with or without BOM) or GB18030, which is what Excel writes in China.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from broker.topics import is_valid_device_id
from server.clock import Clock
from server.db.base import Database, Transaction
from server.domain.common import parse_local_time
from server.domain.devices import assign_device
from server.domain.households import HouseholdIn, add_household_tx
from server.domain.people import WorkerIn, add_worker_tx

__all__ = ["ImportReport", "RowError", "decode_csv", "import_households", "import_workers"]

HOUSEHOLD_COLUMNS = {
    "name": ("name", "household", "户主", "住户", "姓名"),
    "address": ("address", "地址", "住址"),
    "grid": ("grid", "网格"),
    "worker": ("worker", "网格员"),
    "members": ("members", "成员", "家庭成员"),
    "quarantine_start": ("quarantine_start", "start", "隔离开始", "开始时间"),
    "quarantine_end": ("quarantine_end", "end", "隔离结束", "结束时间"),
    "notes": ("notes", "备注"),
    "device": ("device", "device_id", "设备", "设备编号"),
}
WORKER_COLUMNS = {
    "name": ("name", "姓名"),
    "phone": ("phone", "电话", "手机"),
    "language": ("language", "语言"),
    "role": ("role", "角色"),
    "apprise_urls": ("apprise_urls", "urls", "通知地址"),
    "grid": ("grid", "网格"),
}
_ROLE_WORDS = {"网格员": "worker", "主管": "supervisor", "负责人": "supervisor"}
_SPLIT = re.compile(r"[;；、,，\s]+")
_URL_SPLIT = re.compile(r"[\s|]+")


@dataclass(frozen=True, slots=True)
class RowError:
    """What is wrong with one row: its line in the file, the field, the message.

    ``key`` (with ``params``), when set, names the catalogue message an installer
    or operator reads instead of the English ``message``.
    """

    line: int
    field: str
    message: str
    key: str | None = None
    params: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class ImportReport:
    """The outcome of an import."""

    file: str
    total: int = 0
    imported: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False


_Writer = Callable[[Transaction], Awaitable[int]]


class _RowProblemError(Exception):
    def __init__(self, field_name: str, message: str, key: str | None = None,
                 **params: str):
        self.field = field_name
        self.message = message
        self.key = key
        self.params = params
        super().__init__(message)


def decode_csv(data: bytes) -> str:
    """Text of a CSV file written as UTF-8 (BOM or not) or GB18030."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _rows(text: str, columns: dict[str, tuple[str, ...]], file: str
          ) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowError(1, "(header)", "the file is empty")]
    lookup = {alias.strip().lower(): key for key, aliases in columns.items() for alias in aliases}
    keys = [lookup.get(h.strip().lower()) for h in header]
    unknown = [h for h, k in zip(header, keys, strict=True) if k is None and h.strip()]
    if unknown:
        return [], [RowError(1, "(header)", f"unknown columns {unknown}; expected some of "
                             f"{sorted(columns)}")]
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        record = {k: v.strip() for k, v in zip(keys, values, strict=False) if k is not None}
        rows.append((reader.line_num, record))
    return rows, []


def _validation_problem(exc: ValidationError) -> _RowProblemError:
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "(row)"
    return _RowProblemError(name, first["msg"])


async def _run_import(
    db: Database, text: str, file: str, columns: dict[str, tuple[str, ...]], dry_run: bool,
    check: Callable[[Transaction, dict[str, str]], Awaitable[_Writer]],
) -> ImportReport:
    report = ImportReport(file=file, dry_run=dry_run)
    rows, header_errors = _rows(text, columns, file)
    report.errors += header_errors
    report.total = len(rows)
    for line, record in rows:
        try:
            async with db.transaction() as tx:
                write = await check(tx, record)
                if dry_run:
                    continue
                report.imported.append(await write(tx))
        except _RowProblemError as problem:
            report.errors.append(RowError(line, problem.field, problem.message, problem.key,
                                          tuple(problem.params.items())))
        except ValidationError as exc:
            invalid = _validation_problem(exc)
            report.errors.append(RowError(line, invalid.field, invalid.message))
    return report


async def _grid_id(tx: Transaction, name: str) -> int | None:
    if not name:
        return None
    row = await tx.fetch_one("SELECT id FROM grids WHERE name = ?", (name,))
    if row is None:
        raise _RowProblemError(
            "grid", f"grid {name!r} does not exist (add it with `doorwatch grid add`)")
    return int(row["id"])


async def _worker_id(tx: Transaction, value: str, grid_id: int | None) -> int | None:
    if not value:
        return None
    # ASCII digits within 64 bits only: "²".isdigit() is true but int() refuses it.
    if value.isascii() and value.isdigit() and len(value) <= 18:
        row = await tx.fetch_one("SELECT id FROM workers WHERE id = ?", (int(value),))
        if row is None:
            raise _RowProblemError("worker", f"no worker with id {value}")
        return int(row["id"])
    found = await tx.fetch_all("SELECT id, grid_id FROM workers WHERE name = ? AND active = 1",
                               (value,))
    if grid_id is not None and len(found) > 1:
        found = [r for r in found if r["grid_id"] is not None and int(r["grid_id"]) == grid_id]
    if not found:
        raise _RowProblemError("worker", f"no worker called {value!r}")
    if len(found) > 1:
        raise _RowProblemError("worker", f"{len(found)} workers are called {value!r}; use the id")
    return int(found[0]["id"])


def _time(record: dict[str, str], key: str, timezone: str) -> Any:
    value = record.get(key, "")
    if not value:
        return None
    try:
        return parse_local_time(value, timezone)
    except ValueError:
        raise _RowProblemError(key, f"not a date/time: {value!r} (use 2026-03-01 08:00)") from None


async def import_households(
    db: Database, text: str, *, file: str, actor: str, timezone: str, dry_run: bool = False,
    clock: Clock | None = None,
) -> ImportReport:
    """Import households (and optionally assign their provisioned devices) from CSV ``text``."""

    async def check(tx: Transaction, record: dict[str, str]
                    ) -> Callable[[Transaction], Awaitable[int]]:
        grid_id = await _grid_id(tx, record.get("grid", ""))
        household = HouseholdIn(
            name=record.get("name", ""), address=record.get("address", ""), grid_id=grid_id,
            worker_id=await _worker_id(tx, record.get("worker", ""), grid_id),
            members=[m for m in _SPLIT.split(record.get("members", "")) if m],
            quarantine_start=_time(record, "quarantine_start", timezone),
            quarantine_end=_time(record, "quarantine_end", timezone),
            notes=record.get("notes") or None,
        )
        same = await tx.fetch_one(
            "SELECT id FROM households WHERE name = ? AND address = ? AND purged_at IS NULL",
            (household.name, household.address))
        if same is not None:
            raise _RowProblemError("name", f"household {household.name!r} at this address already "
                              f"exists (id {same['id']})")
        device = record.get("device", "")
        if device and not is_valid_device_id(device):
            raise _RowProblemError("device", f"invalid device id {device!r}: use 2-64 of a-z, "
                                   "0-9, '-' and '_'")
        if device:
            taken = await tx.fetch_one("SELECT household_id FROM devices WHERE device_id = ?",
                                       (device,))
            if taken is None:  # never provisioned, or mistyped: nothing would report for them
                raise _RowProblemError("device", f"device {device} is not registered (provision "
                                       "it first)", "cli.device_unknown", device=device)
            if taken["household_id"] is not None:
                raise _RowProblemError("device", f"device {device} is already assigned to "
                                       f"household {taken['household_id']}")

        async def write(tx: Transaction) -> int:
            household_id = await add_household_tx(tx, household, actor=actor, clock=clock)
            if device:
                devices.append((household_id, device))
            return household_id

        return write

    devices: list[tuple[int, str]] = []
    report = await _run_import(db, text, file, HOUSEHOLD_COLUMNS, dry_run, check)
    # Devices after their households exist (assignment has its own transaction).
    for household_id, device_id in devices:
        await assign_device(db, device_id, household_id, actor=actor)
    return report


async def import_workers(
    db: Database, text: str, *, file: str, actor: str, dry_run: bool = False
) -> ImportReport:
    """Import grid workers and supervisors from CSV ``text``."""

    async def check(tx: Transaction, record: dict[str, str]
                    ) -> Callable[[Transaction], Awaitable[int]]:
        role = record.get("role", "") or "worker"
        worker = WorkerIn(
            name=record.get("name", ""), phone=record.get("phone") or None,
            language=record.get("language") or "zh_CN",
            role=_ROLE_WORDS.get(role, role.lower()),
            apprise_urls=[u for u in _URL_SPLIT.split(record.get("apprise_urls", "")) if u],
            grid_id=await _grid_id(tx, record.get("grid", "")),
        )
        same = await tx.fetch_one("SELECT id FROM workers WHERE name = ? AND phone = ?",
                                  (worker.name, worker.phone or ""))
        if same is not None:
            raise _RowProblemError("name", f"worker {worker.name!r} with this phone already exists "
                              f"(id {same['id']})")

        async def write(tx: Transaction) -> int:
            return await add_worker_tx(tx, worker, actor=actor)

        return write

    return await _run_import(db, text, file, WORKER_COLUMNS, dry_run, check)

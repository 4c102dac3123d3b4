"""What every administration command shares: the server config, one database session, errors.

Commands name the database through the server's own configuration
(``--config FILE`` or ``DOORWATCH_CONFIG``, plus the ``DOORWATCH_SERVER__*``
environment), exactly like ``doorwatch server run``. Domain errors become a
one-line message and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import BaseModel

    from server.config import ServerSettings
    from server.db.base import Database
    from server.domain.csv_import import ImportReport

__all__ = [
    "ActorOption",
    "ConfigOption",
    "GridOption",
    "JsonOption",
    "RecordChange",
    "actor_name",
    "change_record",
    "cli_language",
    "parse_day",
    "parse_time",
    "print_done",
    "print_import_report",
    "print_models",
    "resolve_grid",
    "run_with_db",
]

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="DOORWATCH_CONFIG",
                 help="Server TOML file naming the database (as for `doorwatch server run`)"),
]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who is making the change, for the audit log "
                 "(default: cli:<login name>)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table")]
GridOption = Annotated[str | None, typer.Option("--grid", help="Grid name or id")]


def cli_language() -> str:
    """Language of messages (see :func:`ground.i18n.cli_language`)."""
    from ground.i18n import cli_language as language

    return language()


def require_config(config: Path | None, *, dev: bool = False) -> None:
    """Refuse to run on the built-in defaults by accident (exit 2 with what to give).

    With no file and no database in the environment, the defaults meant a
    database in whatever folder the command ran in and an anonymous connection
    to this machine's broker: a device provisioned into a stray database, a
    server nobody meant. ``dev`` (``server run --dev``) allows it.
    """
    if config is not None or dev or os.environ.get("DOORWATCH_SERVER__DATABASE_URL"):
        return
    from ground.i18n import t

    typer.echo(t("server.no_config", cli_language()), err=True)
    raise typer.Exit(2)


def actor_name(actor: str | None) -> str:
    """The audit actor: as given, else ``cli:<login>``."""
    if actor:
        return actor
    try:
        login = os.getlogin()
    except OSError:
        login = os.environ.get("USER", "unknown")
    return f"cli:{login}"


def run_with_db(config: Path | None,
                action: Callable[[Database, ServerSettings], Awaitable[T]]) -> T:
    """Load settings, open (and migrate) the database, run ``action``, close it."""
    from pydantic import ValidationError

    from ground.errors import DoorwatchError
    from ground.i18n import t
    from server.config import load_server_settings
    from server.db.connect import open_database
    from server.domain.errors import InvalidChangeError, NotFoundError, UnknownDeviceError

    async def main() -> T:
        settings = load_server_settings(config)
        _display["timezone"] = settings.notify.timezone
        db = await open_database(settings.database_url)
        try:
            return await action(db, settings)
        finally:
            await db.close()

    require_config(config)
    language = cli_language()
    try:
        return asyncio.run(main())
    except UnknownDeviceError as exc:  # a typo, or a device never provisioned
        typer.echo(t("cli.device_unknown", language, device=exc.device_id), err=True)
    except NotFoundError as exc:
        typer.echo(t("cli.not_found", language, what=str(exc)), err=True)
    except InvalidChangeError as exc:
        typer.echo(t("cli.refused", language, what=str(exc)), err=True)
    except ValidationError as exc:
        for item in exc.errors():
            where = ".".join(str(p) for p in item["loc"]) or "(input)"
            typer.echo(f"error: [{where}] {item['msg']}", err=True)
        raise typer.Exit(2) from None
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


class RecordChange(Protocol):
    """An audited domain change of one record by id: ``lift_silence``, ``end_leave``, ..."""

    def __call__(self, db: Database, record_id: int, /, *, actor: str) -> Awaitable[object]:
        """Change record ``record_id`` on behalf of ``actor``."""
        ...


def change_record(config: Path | None, what: str, record_id: int, change: RecordChange,
                  actor: str | None) -> None:
    """Run ``change`` on one record as ``actor`` (see :func:`actor_name`), then say it is done."""

    async def action(db: Database, _s: ServerSettings) -> None:
        await change(db, record_id, actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"{what} {record_id}")


async def resolve_grid(db: Database, value: str | None) -> int | None:
    """The id of a grid given by name or id (:class:`NotFoundError` if none)."""
    from server.domain.errors import NotFoundError
    from server.domain.people import find_grid, get_grid

    if value is None:
        return None
    # ASCII digits within 64 bits only: "²".isdigit() is true but int() refuses it.
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return (await get_grid(db, int(value))).id
    grid = await find_grid(db, value)
    if grid is None:
        raise NotFoundError("grid", value)
    return grid.id


def parse_time(value: str | None, timezone: str) -> datetime | None:
    """A CLI time (``2026-03-01 08:00``, local to the server's time zone) or None."""
    from server.domain.common import parse_local_time

    if value is None:
        return None
    try:
        return parse_local_time(value, timezone)
    except ValueError:
        raise typer.BadParameter(f"not a date/time: {value!r} (use 2026-03-01 08:00)") from None


def parse_day(value: str | None) -> date | None:
    """A CLI day (``2026-03-01``) or None."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a day: {value!r} (use 2026-03-01)") from None


# Times in tables are shown in the server's configured time zone (set by run_with_db).
_display: dict[str, str] = {"timezone": "UTC"}


def _cell(value: Any) -> str:
    from zoneinfo import ZoneInfo

    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(_display["timezone"])).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if hasattr(value, "value"):
        return str(value.value)
    return str(value)


def print_models(items: Sequence[BaseModel], columns: list[str], *, as_json: bool) -> None:
    """Print models as an aligned table (or JSON lines)."""
    if as_json:
        for item in items:
            typer.echo(item.model_dump_json())
        return
    table = [columns] + [[_cell(getattr(item, c)) for c in columns] for item in items]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


def print_done(what: str) -> None:
    """Tell the administrator that ``what`` was done, in the CLI's language."""
    from ground.i18n import t

    typer.echo(t("cli.done", cli_language(), what=what))


def print_import_report(report: ImportReport) -> None:
    """Print a CSV import's row errors (to stderr) and its summary line."""
    from ground.i18n import t

    language = cli_language()
    for error in report.errors:
        message = t(error.key, language, **dict(error.params)) if error.key else error.message
        typer.echo(t("cli.import.row_error", language, file=report.file, line=error.line,
                     field=error.field, message=message), err=True)
    dry = t("cli.import.dry_run", language) if report.dry_run else ""
    ok = report.total - len({e.line for e in report.errors if e.line > 1})
    typer.echo(t("cli.import.summary", language, file=report.file, total=report.total,
                 ok=ok, errors=len(report.errors), dry=dry))

"""``doorwatch roster ...``: the per-grid duty roster (who is on shift, and their backup)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    GridOption,
    JsonOption,
    actor_name,
    change_record,
    parse_time,
    print_done,
    print_models,
    resolve_grid,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database
    from server.domain.roster import Shift

__all__ = ["roster_app"]

roster_app = typer.Typer(help="Duty roster: who is on shift in a grid, and their backup.",
                         no_args_is_help=True)

_COLUMNS = ["id", "grid", "days", "starts", "ends", "worker_id", "worker", "backup_id",
            "backup", "notes"]


@roster_app.command("add")
def roster_add(
    grid: Annotated[str, typer.Option("--grid", help="Grid name or id")],
    worker: Annotated[int, typer.Option(help="On-duty worker's id")],
    starts: Annotated[str, typer.Option("--from", help="Local start time HH:MM")],
    ends: Annotated[str, typer.Option("--to", help="Local end time HH:MM (at or before "
                                      "--from: the next day)")],
    backup: Annotated[int | None, typer.Option(help="Backup worker's id")] = None,
    days: Annotated[str, typer.Option(help="ISO weekdays the shift starts on: 1 = Monday "
                                      "... 7 = Sunday, e.g. 12345")] = "1234567",
    notes: Annotated[str | None, typer.Option(help="Free text")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a shift to a grid's roster."""
    from server.domain.roster import ShiftIn, add_shift

    async def action(db: Database, _s: ServerSettings) -> int:
        grid_id = await resolve_grid(db, grid)
        assert grid_id is not None
        shift = ShiftIn(grid_id=grid_id, worker_id=worker, backup_id=backup, days=days,
                        starts=starts, ends=ends, notes=notes)
        return await add_shift(db, shift, actor=actor_name(actor))

    print_done(f"shift {run_with_db(config, action)}")


@roster_app.command("list")
def roster_list(grid: GridOption = None, config: ConfigOption = None,
                as_json: JsonOption = False) -> None:
    """List shifts (of one grid)."""
    from server.domain.roster import list_shifts

    async def action(db: Database, _s: ServerSettings) -> list[Shift]:
        return await list_shifts(db, await resolve_grid(db, grid))

    print_models(run_with_db(config, action), _COLUMNS, as_json=as_json)


@roster_app.command("remove")
def roster_remove(
    shift: Annotated[int, typer.Argument(help="Shift id")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Take a shift off the roster."""
    from server.domain.roster import remove_shift

    change_record(config, "shift", shift, remove_shift, actor)


@roster_app.command("who")
def roster_who(
    grid: Annotated[str, typer.Option("--grid", help="Grid name or id")],
    at: Annotated[str | None, typer.Option(help="Local time (default: now), e.g. "
                                           "'2026-03-01 08:00'")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Who is on duty in a grid now (or at --at)."""
    from ground.timeutil import utcnow
    from server.domain.roster import on_duty

    async def action(db: Database, settings: ServerSettings) -> list[Shift]:
        grid_id = await resolve_grid(db, grid)
        assert grid_id is not None
        moment = parse_time(at, settings.notify.timezone) or utcnow()
        return await on_duty(db, grid_id, moment, settings.notify.timezone)

    print_models(run_with_db(config, action), _COLUMNS, as_json=as_json)

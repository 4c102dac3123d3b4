"""``doorwatch grid ...``: grids (网格) and their supervisors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    print_done,
    print_models,
    resolve_grid,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database

__all__ = ["grid_app"]

grid_app = typer.Typer(help="Grids (网格) and their supervisors.", no_args_is_help=True)


@grid_app.command("add")
def grid_add(
    name: Annotated[str, typer.Argument(help="Grid name")],
    supervisor: Annotated[int | None, typer.Option(help="Supervisor's worker id")] = None,
    notes: Annotated[str | None, typer.Option(help="Free text")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a grid."""
    from server.domain.people import GridIn, add_grid

    async def action(db: Database, _s: ServerSettings) -> int:
        return await add_grid(db, GridIn(name=name, supervisor_id=supervisor, notes=notes),
                              actor=actor_name(actor))

    print_done(f"grid {run_with_db(config, action)}")


@grid_app.command("list")
def grid_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List grids."""
    from server.domain.people import Grid, list_grids

    async def action(db: Database, _s: ServerSettings) -> list[Grid]:
        return await list_grids(db)

    print_models(run_with_db(config, action), ["id", "name", "supervisor_id", "notes"],
                 as_json=as_json)


@grid_app.command("update")
def grid_update(
    grid: Annotated[str, typer.Argument(help="Grid name or id")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    supervisor: Annotated[int | None, typer.Option(help="Supervisor's worker id")] = None,
    notes: Annotated[str | None, typer.Option(help="Notes")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Rename a grid or change its supervisor."""
    from server.domain.people import GridUpdate, update_grid

    async def action(db: Database, _s: ServerSettings) -> None:
        grid_id = await resolve_grid(db, grid)
        assert grid_id is not None
        await update_grid(db, grid_id, GridUpdate(name=name, supervisor_id=supervisor,
                                                  notes=notes), actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"grid {grid}")

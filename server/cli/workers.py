"""``doorwatch worker ...``: grid workers and supervisors, CSV import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    GridOption,
    JsonOption,
    actor_name,
    print_done,
    print_import_report,
    print_models,
    resolve_grid,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database
    from server.domain.csv_import import ImportReport

__all__ = ["worker_app"]

worker_app = typer.Typer(help="Grid workers and supervisors.", no_args_is_help=True)

_WORKER_COLUMNS = ["id", "name", "role", "language", "phone", "grid_id", "apprise_urls"]


@worker_app.command("add")
def worker_add(
    name: Annotated[str, typer.Argument(help="Name")],
    url: Annotated[list[str] | None, typer.Option("--url", help="Apprise URL (repeat)")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone")] = None,
    language: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN",
    supervisor: Annotated[bool, typer.Option("--supervisor", help="A supervisor")] = False,
    grid: GridOption = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a grid worker (or a supervisor)."""
    from server.domain.people import Role, WorkerIn, add_worker

    async def action(db: Database, _s: ServerSettings) -> int:
        worker = WorkerIn(name=name, apprise_urls=url or [], phone=phone, language=language,
                          role=Role.SUPERVISOR if supervisor else Role.WORKER,
                          grid_id=await resolve_grid(db, grid))
        return await add_worker(db, worker, actor=actor_name(actor))

    print_done(f"worker {run_with_db(config, action)}")


@worker_app.command("list")
def worker_list(
    grid: GridOption = None,
    role: Annotated[str | None, typer.Option(help="worker or supervisor")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List workers and supervisors."""
    from server.domain.people import Role, Worker, list_workers
    from server.notify.privacy import private_urls

    async def action(db: Database, _s: ServerSettings) -> list[Worker]:
        return await list_workers(db, role=Role(role) if role else None,
                                  grid_id=await resolve_grid(db, grid))

    # URLs are credentials: shown as Apprise renders them with privacy (see docs/security.md).
    workers = [w.model_copy(update={"apprise_urls": private_urls(w.apprise_urls)})
               for w in run_with_db(config, action)]
    print_models(workers, _WORKER_COLUMNS, as_json=as_json)


@worker_app.command("update")
def worker_update(
    worker_id: Annotated[int, typer.Argument(help="Worker id")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    url: Annotated[list[str] | None, typer.Option("--url", help="Replace Apprise URLs")] = None,
    phone: Annotated[str | None, typer.Option(help="New phone")] = None,
    language: Annotated[str | None, typer.Option(help="zh_CN or en")] = None,
    grid: GridOption = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Serving")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Change a worker (URLs, language, grid, active)."""
    from server.domain.people import WorkerUpdate, update_worker

    async def action(db: Database, _s: ServerSettings) -> None:
        change = WorkerUpdate(name=name, apprise_urls=url, phone=phone, language=language,
                              grid_id=await resolve_grid(db, grid), active=active)
        await update_worker(db, worker_id, change, actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"worker {worker_id}")


@worker_app.command("import")
def worker_import(
    file: Annotated[Path, typer.Argument(help="CSV with name,phone,language,role,apprise_urls,"
                                         "grid", exists=True, dir_okay=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; write nothing")] = False,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Import workers and supervisors from CSV; bad rows are reported, good rows kept."""
    from server.domain.csv_import import decode_csv, import_workers

    text = decode_csv(file.read_bytes())

    async def action(db: Database, _s: ServerSettings) -> ImportReport:
        return await import_workers(db, text, file=str(file), actor=actor_name(actor),
                                    dry_run=dry_run)

    report = run_with_db(config, action)
    print_import_report(report)
    if report.errors:
        raise typer.Exit(1)

"""``doorwatch leave ...``: permitted leaves (hospital, testing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    change_record,
    parse_time,
    print_done,
    print_models,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database

__all__ = ["leave_app"]

leave_app = typer.Typer(help="Permitted leaves (hospital, testing).", no_args_is_help=True)


@leave_app.command("add")
def leave_add(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    start: Annotated[str, typer.Option("--from", help="Start, local time (2026-03-01 08:00)")],
    end: Annotated[str, typer.Option("--to", help="End, local time")],
    reason: Annotated[str, typer.Option(help="Hospital, testing, ...")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Grant a permitted leave: an exit in the window is not a breach."""
    from server.domain.leaves import LeaveIn, grant_leave

    async def action(db: Database, settings: ServerSettings) -> int:
        tz = settings.notify.timezone
        return await grant_leave(db, LeaveIn(household_id=household_id,
                                             starts_at=parse_time(start, tz),
                                             ends_at=parse_time(end, tz), reason=reason),
                                 actor=actor_name(actor))

    print_done(f"leave {run_with_db(config, action)}")


@leave_app.command("list")
def leave_list(
    household_id: Annotated[int | None, typer.Option("--household", help="Only this one")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List permitted leaves."""
    from server.domain.leaves import Leave, list_leaves

    async def action(db: Database, _s: ServerSettings) -> list[Leave]:
        return await list_leaves(db, household_id=household_id)

    print_models(run_with_db(config, action),
                 ["id", "household_id", "starts_at", "ends_at", "state", "reason", "granted_by"],
                 as_json=as_json)


@leave_app.command("update")
def leave_update(
    leave_id: Annotated[int, typer.Argument(help="Leave id")],
    start: Annotated[str | None, typer.Option("--from", help="New start")] = None,
    end: Annotated[str | None, typer.Option("--to", help="New end")] = None,
    reason: Annotated[str | None, typer.Option(help="New reason")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Move a leave's window or change its reason."""
    from server.domain.leaves import LeaveUpdate, update_leave

    async def action(db: Database, settings: ServerSettings) -> None:
        tz = settings.notify.timezone
        await update_leave(db, leave_id, LeaveUpdate(starts_at=parse_time(start, tz),
                                                     ends_at=parse_time(end, tz), reason=reason),
                           actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"leave {leave_id}")


@leave_app.command("end")
def leave_end(
    leave_id: Annotated[int, typer.Argument(help="Leave id")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """End a leave now."""
    from server.domain.leaves import end_leave

    change_record(config, "leave", leave_id, end_leave, actor)

"""``doorwatch household ...``: households, their quarantine, devices, CSV import, purge.

Each command is a thin shell over :mod:`server.domain` (no SQL here): parse
options, call the domain inside :func:`~server.cli.common.run_with_db`, print the result.
"""

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
    cli_language,
    parse_time,
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

__all__ = ["household_app"]

household_app = typer.Typer(help="Households under quarantine, their devices, CSV import, "
                            "retention purge.", no_args_is_help=True)

MemberOption = Annotated[list[str] | None, typer.Option("--member", help="A member (repeat)")]
StartOption = Annotated[str | None, typer.Option(
    "--start", help="Quarantine start, local time (2026-03-01 08:00)")]
EndOption = Annotated[str | None, typer.Option("--end", help="Quarantine end, local time")]

_HOUSEHOLD_COLUMNS = ["id", "name", "address", "grid_id", "worker_id", "armed",
                      "quarantine_start", "quarantine_end", "devices"]


@household_app.command("add")
def household_add(
    name: Annotated[str, typer.Argument(help="Household (户主) name")],
    address: Annotated[str, typer.Argument(help="Address")],
    grid: GridOption = None,
    worker: Annotated[int | None, typer.Option(help="Grid worker id notified first")] = None,
    member: MemberOption = None,
    start: StartOption = None,
    end: EndOption = None,
    notes: Annotated[str | None, typer.Option(help="Free text")] = None,
    building: Annotated[str | None, typer.Option(help="Building (devices of one building "
                                                 "going offline together are one incident)")
                        ] = None,
    device: Annotated[str | None, typer.Option(
        help="Assign this device (provisioned with `device provision`)")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a household (armed during its quarantine period)."""
    from server.domain.devices import assign_device, get_device
    from server.domain.households import HouseholdIn, add_household

    async def action(db: Database, settings: ServerSettings) -> int:
        if device:
            await get_device(db, device)  # refused before the household is written
        tz = settings.notify.timezone
        household = HouseholdIn(
            name=name, address=address, grid_id=await resolve_grid(db, grid), worker_id=worker,
            members=member or [], quarantine_start=parse_time(start, tz),
            quarantine_end=parse_time(end, tz), notes=notes, building=building)
        household_id = await add_household(db, household, actor=actor_name(actor))
        if device:
            await assign_device(db, device, household_id, actor=actor_name(actor))
        return household_id

    print_done(f"household {run_with_db(config, action)}")


@household_app.command("list")
def household_list(
    grid: GridOption = None,
    worker: Annotated[int | None, typer.Option(help="Only this worker's households")] = None,
    armed: Annotated[bool | None, typer.Option("--armed/--disarmed", help="Filter")] = None,
    include_purged: Annotated[bool, typer.Option(help="Show purged households too")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List households."""
    from server.domain.households import Household, list_households

    async def action(db: Database, _s: ServerSettings) -> list[Household]:
        return await list_households(db, grid_id=await resolve_grid(db, grid), worker_id=worker,
                                     armed=armed, include_purged=include_purged)

    print_models(run_with_db(config, action), _HOUSEHOLD_COLUMNS, as_json=as_json)


@household_app.command("show")
def household_show(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    config: ConfigOption = None,
) -> None:
    """Show a household with its device history and leaves."""
    from server.domain.devices import assignment_history
    from server.domain.households import get_household
    from server.domain.leaves import list_leaves

    async def action(db: Database, _s: ServerSettings) -> None:
        household = await get_household(db, household_id)
        typer.echo(household.model_dump_json(indent=2))
        typer.echo("device history:")
        print_models(await assignment_history(db, household_id=household_id),
                     ["device_id", "assigned_at", "unassigned_at", "reason"], as_json=False)
        typer.echo("leaves:")
        print_models(await list_leaves(db, household_id=household_id),
                     ["id", "starts_at", "ends_at", "state", "reason", "granted_by"],
                     as_json=False)

    run_with_db(config, action)


@household_app.command("update")
def household_update(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    address: Annotated[str | None, typer.Option(help="New address")] = None,
    grid: GridOption = None,
    worker: Annotated[int | None, typer.Option(help="New grid worker id")] = None,
    member: MemberOption = None,
    start: StartOption = None,
    end: EndOption = None,
    notes: Annotated[str | None, typer.Option(help="New notes")] = None,
    building: Annotated[str | None, typer.Option(help="New building")] = None,
    armed: Annotated[bool | None, typer.Option(
        "--armed/--disarmed", help="By hand, for a household without a period")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Change a household (a new period re-arms or disarms at once)."""
    from server.domain.households import HouseholdUpdate, update_household

    async def action(db: Database, settings: ServerSettings) -> None:
        tz = settings.notify.timezone
        change = HouseholdUpdate(
            name=name, address=address, grid_id=await resolve_grid(db, grid), worker_id=worker,
            members=member, quarantine_start=parse_time(start, tz),
            quarantine_end=parse_time(end, tz), notes=notes, armed=armed, building=building)
        await update_household(db, household_id, change, actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"household {household_id}")


@household_app.command("end-quarantine")
def household_end_quarantine(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    reason: Annotated[str, typer.Option(help="Why it ends early (audited)")],
    outcome: Annotated[str, typer.Option(
        help="How it ended: completed, tested_negative, hospitalised, transferred, other")]
    = "other",
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """End a household's quarantine now: release record, devices disarmed, worker told."""
    from server.domain.households import end_quarantine_early
    from server.domain.releases import ReleaseContext, ReleaseOutcome

    try:
        how = ReleaseOutcome(outcome)
    except ValueError:
        raise typer.BadParameter(f"{outcome!r}: one of "
                                 f"{', '.join(o.value for o in ReleaseOutcome)}") from None

    async def action(db: Database, settings: ServerSettings) -> None:
        await end_quarantine_early(db, household_id, actor=actor_name(actor), reason=reason,
                                   outcome=how, release=ReleaseContext.of(settings))

    run_with_db(config, action)
    print_done(f"household {household_id}")


@household_app.command("import")
def household_import(
    file: Annotated[Path, typer.Argument(help="CSV with name,address,grid,worker,members,"
                                         "quarantine_start,quarantine_end,notes,device",
                                         exists=True, dir_okay=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; write nothing")] = False,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Import households from a grid office's CSV; bad rows are reported, good rows kept."""
    from server.domain.csv_import import decode_csv, import_households

    text = decode_csv(file.read_bytes())

    async def action(db: Database, settings: ServerSettings) -> ImportReport:
        return await import_households(db, text, file=str(file), actor=actor_name(actor),
                                       timezone=settings.notify.timezone, dry_run=dry_run)

    report = run_with_db(config, action)
    print_import_report(report)
    if report.errors:
        raise typer.Exit(1)


@household_app.command("assign-device")
def household_assign_device(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    device: Annotated[str, typer.Argument(help="Device id (provisioned with `device provision`)")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Assign a provisioned device to a household (ending its earlier assignment)."""
    from server.domain.devices import assign_device

    async def action(db: Database, _s: ServerSettings) -> None:
        # An unknown id (a typo, a device never provisioned) is refused by run_with_db's
        # catalogue message: nothing would ever report under it.
        await assign_device(db, device, household_id, actor=actor_name(actor))

    run_with_db(config, action)
    print_done(f"{device} -> household {household_id}")


@household_app.command("replace-device")
def household_replace_device(
    old: Annotated[str, typer.Argument(help="Device being replaced")],
    new: Annotated[str, typer.Argument(
        help="Replacement device (provisioned with `device provision`)")],
    reason: Annotated[str, typer.Option(help="Why (audited)")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Replace a household's device; the household keeps its whole history."""
    from server.domain.devices import replace_device

    async def action(db: Database, _s: ServerSettings) -> int:
        return await replace_device(db, old, new, actor=actor_name(actor), reason=reason)

    household_id = run_with_db(config, action)
    print_done(f"{old} -> {new} (household {household_id})")


@household_app.command("unassign-device")
def household_unassign_device(
    device: Annotated[str, typer.Argument(help="Device id")],
    reason: Annotated[str, typer.Option(help="Why (audited)")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Take a device off its household (it is told to disarm)."""
    from server.domain.devices import unassign_device

    async def action(db: Database, _s: ServerSettings) -> None:
        await unassign_device(db, device, actor=actor_name(actor), reason=reason)

    run_with_db(config, action)
    print_done(device)


@household_app.command("devices")
def household_devices(
    household_id: Annotated[int | None, typer.Option("--household", help="Only this one")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List devices with their household, status and arm command."""
    from server.domain.devices import Device, list_devices

    async def action(db: Database, _s: ServerSettings) -> list[Device]:
        return await list_devices(db, household_id=household_id)

    print_models(run_with_db(config, action),
                 ["device_id", "household_id", "status", "last_heartbeat_at", "max_seq",
                  "arm_command", "arm_published_at"], as_json=as_json)


@household_app.command("purge")
def household_purge(
    days: Annotated[int | None, typer.Option(help="Days after the quarantine's end "
                                             "(default: the server's retention.days)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go")] = False,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Purge personal data and snapshots of households whose quarantine ended long ago."""
    from ground.i18n import t
    from server.jobs.retention import PurgeReport, purge_due

    async def action(db: Database, settings: ServerSettings) -> PurgeReport:
        return await purge_due(db, days=settings.retention.days if days is None else days,
                               actor=actor_name(actor), dry_run=dry_run)

    report = run_with_db(config, action)
    language = cli_language()
    typer.echo(t("cli.purge.summary", language, households=len(report.households),
                 snapshots=report.snapshots, followups=report.followups,
                 dry=t("cli.import.dry_run", language) if dry_run else ""))
    if report.households:
        typer.echo(" ".join(f"household:{h}" for h in report.households))

"""Administration commands: ``doorwatch household|worker|grid|leave|followup ...``.

Each command is a thin shell over :mod:`server.domain` (no SQL here): parse
options, call the domain inside :func:`run_with_db`, print the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli_common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    cli_language,
    parse_day,
    parse_time,
    print_models,
    resolve_grid,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database
    from server.domain.csv_import import ImportReport

__all__ = ["followup_app", "grid_app", "household_app", "leave_app", "worker_app"]

household_app = typer.Typer(help="Households under quarantine, their devices, CSV import, "
                            "retention purge.", no_args_is_help=True)
worker_app = typer.Typer(help="Grid workers and supervisors.", no_args_is_help=True)
grid_app = typer.Typer(help="Grids (网格) and their supervisors.", no_args_is_help=True)
leave_app = typer.Typer(help="Permitted leaves (hospital, testing).", no_args_is_help=True)
followup_app = typer.Typer(help="Daily follow-ups: temperatures, symptoms.", no_args_is_help=True)

GridOption = Annotated[str | None, typer.Option("--grid", help="Grid name or id")]
MemberOption = Annotated[list[str] | None, typer.Option("--member", help="A member (repeat)")]
StartOption = Annotated[str | None, typer.Option(
    "--start", help="Quarantine start, local time (2026-03-01 08:00)")]
EndOption = Annotated[str | None, typer.Option("--end", help="Quarantine end, local time")]

_HOUSEHOLD_COLUMNS = ["id", "name", "address", "grid_id", "worker_id", "armed",
                      "quarantine_start", "quarantine_end", "devices"]
_WORKER_COLUMNS = ["id", "name", "role", "language", "phone", "grid_id", "apprise_urls"]


def _done(what: str) -> None:
    from doorwatch.i18n import t

    typer.echo(t("cli.done", cli_language(), what=what))


def _print_report(report: ImportReport) -> None:
    from doorwatch.i18n import t

    language = cli_language()
    for error in report.errors:
        typer.echo(t("cli.import.row_error", language, file=report.file, line=error.line,
                     field=error.field, message=error.message), err=True)
    dry = t("cli.import.dry_run", language) if report.dry_run else ""
    ok = report.total - len({e.line for e in report.errors if e.line > 1})
    typer.echo(t("cli.import.summary", language, file=report.file, total=report.total,
                 ok=ok, errors=len(report.errors), dry=dry))


# --- households -------------------------------------------------------------------------

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
    device: Annotated[str | None, typer.Option(help="Register and assign this device")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Add a household (armed during its quarantine period)."""
    from server.domain.devices import register_device
    from server.domain.households import HouseholdIn, add_household

    async def action(db: Database, settings: ServerSettings) -> int:
        tz = settings.notify.timezone
        household = HouseholdIn(
            name=name, address=address, grid_id=await resolve_grid(db, grid), worker_id=worker,
            members=member or [], quarantine_start=parse_time(start, tz),
            quarantine_end=parse_time(end, tz), notes=notes)
        household_id = await add_household(db, household, actor=actor_name(actor))
        if device:
            await register_device(db, device, household_id=household_id, actor=actor_name(actor))
        return household_id

    _done(f"household {run_with_db(config, action)}")


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
            quarantine_end=parse_time(end, tz), notes=notes, armed=armed)
        await update_household(db, household_id, change, actor=actor_name(actor))

    run_with_db(config, action)
    _done(f"household {household_id}")


@household_app.command("end-quarantine")
def household_end_quarantine(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    reason: Annotated[str, typer.Option(help="Why it ends early (audited)")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """End a household's quarantine now: its devices are disarmed; audited."""
    from server.domain.households import end_quarantine_early

    async def action(db: Database, _s: ServerSettings) -> None:
        await end_quarantine_early(db, household_id, actor=actor_name(actor), reason=reason)

    run_with_db(config, action)
    _done(f"household {household_id}")


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
    _print_report(report)
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
    from doorwatch.i18n import t
    from server.domain.devices import assign_device
    from server.domain.errors import NotFoundError

    async def action(db: Database, _s: ServerSettings) -> bool:
        try:
            await assign_device(db, device, household_id, actor=actor_name(actor))
        except NotFoundError as exc:
            if exc.kind != "device":
                raise
            return False  # a typo or a device never provisioned: nothing would ever report
        return True

    if not run_with_db(config, action):
        typer.echo(t("cli.device_unknown", cli_language(), device=device), err=True)
        raise typer.Exit(1)
    _done(f"{device} -> household {household_id}")


@household_app.command("replace-device")
def household_replace_device(
    old: Annotated[str, typer.Argument(help="Device being replaced")],
    new: Annotated[str, typer.Argument(help="Replacement device (registered if new)")],
    reason: Annotated[str, typer.Option(help="Why (audited)")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Replace a household's device; the household keeps its whole history."""
    from server.domain.devices import register_device, replace_device

    async def action(db: Database, _s: ServerSettings) -> int:
        await register_device(db, new, actor=actor_name(actor))
        return await replace_device(db, old, new, actor=actor_name(actor), reason=reason)

    household_id = run_with_db(config, action)
    _done(f"{old} -> {new} (household {household_id})")


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
    _done(device)


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
    from doorwatch.i18n import t
    from server.retention import PurgeReport, purge_due

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


# --- workers and grids ------------------------------------------------------------------

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

    _done(f"worker {run_with_db(config, action)}")


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
    _done(f"worker {worker_id}")


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
    _print_report(report)
    if report.errors:
        raise typer.Exit(1)


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

    _done(f"grid {run_with_db(config, action)}")


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
    _done(f"grid {grid}")


# --- leaves and follow-ups --------------------------------------------------------------

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

    _done(f"leave {run_with_db(config, action)}")


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
    _done(f"leave {leave_id}")


@leave_app.command("end")
def leave_end(
    leave_id: Annotated[int, typer.Argument(help="Leave id")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """End a leave now."""
    from server.domain.leaves import end_leave

    async def action(db: Database, _s: ServerSettings) -> None:
        await end_leave(db, leave_id, actor=actor_name(actor))

    run_with_db(config, action)
    _done(f"leave {leave_id}")


def _temperatures(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        member, sep, celsius = value.rpartition("=")
        try:
            out[member.strip()] = float(celsius)
        except ValueError:
            sep = ""
        if not sep or not member.strip():
            raise typer.BadParameter(f"{value!r}: use NAME=36.6")
    return out


@followup_app.command("add")
def followup_add(
    household_id: Annotated[int, typer.Argument(help="Household id")],
    temp: Annotated[list[str] | None, typer.Option(help="Member=°C, e.g. 张三=36.6 (repeat)")]
    = None,
    day: Annotated[str | None, typer.Option(help="Day (default: today)")] = None,
    symptoms: Annotated[str | None, typer.Option(help="Symptoms")] = None,
    note: Annotated[str | None, typer.Option(help="Note")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a daily follow-up."""
    from datetime import date

    from server.domain.followups import FollowUpIn, record_followup

    async def action(db: Database, _s: ServerSettings) -> int:
        return await record_followup(db, FollowUpIn(
            household_id=household_id, day=parse_day(day) or date.today(),
            temperatures=_temperatures(temp or []), symptoms=symptoms, note=note),
            actor=actor_name(actor))

    _done(f"follow-up {run_with_db(config, action)}")


@followup_app.command("list")
def followup_list(
    household_id: Annotated[int | None, typer.Option("--household", help="Only this one")] = None,
    day_from: Annotated[str | None, typer.Option("--from", help="First day")] = None,
    day_to: Annotated[str | None, typer.Option("--to", help="Last day")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List follow-ups."""
    from server.domain.followups import FollowUp, list_followups

    async def action(db: Database, _s: ServerSettings) -> list[FollowUp]:
        return await list_followups(db, household_id=household_id, day_from=parse_day(day_from),
                                    day_to=parse_day(day_to))

    print_models(run_with_db(config, action),
                 ["id", "household_id", "day", "temperatures", "symptoms", "note", "recorded_by"],
                 as_json=as_json)


@followup_app.command("update")
def followup_update(
    followup_id: Annotated[int, typer.Argument(help="Follow-up id")],
    temp: Annotated[list[str] | None, typer.Option(help="Replace temperatures (repeat)")] = None,
    symptoms: Annotated[str | None, typer.Option(help="Symptoms")] = None,
    note: Annotated[str | None, typer.Option(help="Note")] = None,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Correct a follow-up."""
    from server.domain.followups import FollowUpUpdate, update_followup

    async def action(db: Database, _s: ServerSettings) -> None:
        await update_followup(db, followup_id, FollowUpUpdate(
            temperatures=_temperatures(temp) if temp else None, symptoms=symptoms, note=note),
            actor=actor_name(actor))

    run_with_db(config, action)
    _done(f"follow-up {followup_id}")

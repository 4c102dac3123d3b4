"""``doorwatch incidents list|show|ack|resolve|export``: the incident log from a shell.

Thin shell over :mod:`server.domain.incidents` (no SQL here).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    cli_language,
    parse_day,
    print_models,
    resolve_grid,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database
    from server.domain.incidents import Incident, IncidentFilter

__all__ = ["incidents_app"]

incidents_app = typer.Typer(help="Incidents: list, acknowledge, resolve, export CSV.",
                            no_args_is_help=True)

StateOption = Annotated[str | None, typer.Option(help="open, acknowledged or resolved")]
KindOption = Annotated[str | None, typer.Option(help="breach, possible_breach, overdue_return, "
                                                "visitor, device_offline, tamper")]
GridOption = Annotated[str | None, typer.Option("--grid", help="Grid name or id")]
HouseholdOption = Annotated[int | None, typer.Option("--household", help="Household id")]
FromOption = Annotated[str | None, typer.Option("--from", help="First day (local), 2026-03-01")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last day (local), inclusive")]
LimitOption = Annotated[int, typer.Option(help="At most this many")]

_COLUMNS = ["id", "kind", "severity", "state", "household", "address", "device_id",
            "opened_at", "acknowledged_by", "outcome", "events"]


async def _filter(db: Database, settings: ServerSettings, state: str | None, kind: str | None,
                  grid: str | None, household: int | None, day_from: str | None,
                  day_to: str | None, limit: int) -> IncidentFilter:
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from server.domain.incident_opening import IncidentKind, IncidentState
    from server.domain.incidents import IncidentFilter

    zone = ZoneInfo(settings.notify.timezone)
    first, last = parse_day(day_from), parse_day(day_to)
    try:
        return IncidentFilter(
            state=IncidentState(state) if state else None,
            kind=IncidentKind(kind) if kind else None,
            grid_id=await resolve_grid(db, grid), household_id=household,
            opened_from=datetime.combine(first, time(), zone) if first else None,
            opened_to=datetime.combine(last + timedelta(days=1), time(), zone) if last else None,
            limit=limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@incidents_app.command("list")
def incidents_list(
    state: StateOption = None, kind: KindOption = None, grid: GridOption = None,
    household: HouseholdOption = None, day_from: FromOption = None, day_to: ToOption = None,
    limit: LimitOption = 200, config: ConfigOption = None, as_json: JsonOption = False,
) -> None:
    """List incidents, newest first."""
    from server.domain.incidents import list_incidents

    async def action(db: Database, settings: ServerSettings) -> list[Incident]:
        return await list_incidents(db, await _filter(db, settings, state, kind, grid, household,
                                                      day_from, day_to, limit))

    print_models(run_with_db(config, action), _COLUMNS, as_json=as_json)


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    config: ConfigOption = None,
) -> None:
    """Show an incident with its events, notifications and audit trail."""
    from server.domain.audit_log import list_audit
    from server.domain.incidents import get_incident, incident_events, incident_notifications

    async def action(db: Database, _s: ServerSettings) -> None:
        typer.echo((await get_incident(db, incident_id)).model_dump_json(indent=2))
        typer.echo("events:")
        print_models(await incident_events(db, incident_id),
                     ["device_id", "seq", "kind", "device_time", "has_snapshot"], as_json=False)
        typer.echo("notifications:")
        print_models(await incident_notifications(db, incident_id),
                     ["id", "purpose", "recipient", "state", "attempts", "last_error"],
                     as_json=False)
        typer.echo("audit:")
        print_models(list(reversed(await list_audit(db, subject=f"incident:{incident_id}"))),
                     ["at", "actor", "action", "detail"], as_json=False)

    run_with_db(config, action)


@incidents_app.command("ack")
def incidents_ack(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Acknowledge an open incident (stops reminders and escalation)."""
    from ground.i18n import t
    from server.domain.incidents import acknowledge_incident
    from server.domain.notification_outbox import NotificationContext

    async def action(db: Database, settings: ServerSettings) -> None:
        await acknowledge_incident(db, incident_id, actor=actor_name(actor),
                                   context=NotificationContext.of(settings))

    run_with_db(config, action)
    typer.echo(t("cli.done", cli_language(), what=f"incident {incident_id} acknowledged"))


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: Annotated[int, typer.Argument(help="Incident id")],
    outcome: Annotated[str, typer.Option(help="confirmed_breach, false_alarm, authorised or "
                                         "device_fault")],
    note: Annotated[str, typer.Option(help="What happened")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Resolve an incident with its outcome and a note."""
    from ground.i18n import t
    from server.domain.incident_opening import IncidentOutcome
    from server.domain.incidents import resolve_incident
    from server.domain.notification_outbox import NotificationContext

    try:
        chosen = IncidentOutcome(outcome)
    except ValueError:
        raise typer.BadParameter(f"unknown outcome {outcome!r}; one of "
                                 f"{[o.value for o in IncidentOutcome]}") from None

    async def action(db: Database, settings: ServerSettings) -> None:
        await resolve_incident(db, incident_id, actor=actor_name(actor), outcome=chosen,
                               note=note, context=NotificationContext.of(settings))

    run_with_db(config, action)
    typer.echo(t("cli.done", cli_language(), what=f"incident {incident_id} resolved"))


@incidents_app.command("export")
def incidents_export(
    output: Annotated[Path, typer.Argument(help="CSV file to write ('-' for stdout)")],
    state: StateOption = None, kind: KindOption = None, grid: GridOption = None,
    household: HouseholdOption = None, day_from: FromOption = None, day_to: ToOption = None,
    limit: LimitOption = 100_000, config: ConfigOption = None,
) -> None:
    """Export incidents as CSV (UTF-8 with BOM, so spreadsheet programs read Chinese)."""
    from server.domain.incidents import export_incidents_csv, list_incidents

    async def action(db: Database, settings: ServerSettings) -> tuple[str, int]:
        found = await list_incidents(db, await _filter(db, settings, state, kind, grid, household,
                                                       day_from, day_to, limit))
        return export_incidents_csv(found, settings.notify.timezone), len(found)

    text, count = run_with_db(config, action)
    if str(output) == "-":
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8-sig")
        typer.echo(f"{output}: {count} incidents")

"""``doorwatch silence ...``: silence a household's device alerts for a while, with a reason.

A silence suppresses notifications of device-offline and tamper incidents
(with ``--breaches`` also of breaches: a household that is away); incidents
are still recorded. See :mod:`server.domain.silences`.
"""

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
    from server.domain.silences import Silence

__all__ = ["silence_app"]

silence_app = typer.Typer(help="Silence a household's alerts for a while (hospital stay, "
                          "repairs), with a reason and an expiry; audited.",
                          no_args_is_help=True)

_COLUMNS = ["id", "household_id", "household", "reason", "starts_at", "ends_at",
            "include_breaches", "created_by", "lifted_at", "lifted_by", "active"]


@silence_app.command("add")
def silence_add(
    household: Annotated[int, typer.Argument(help="Household id")],
    reason: Annotated[str, typer.Option(help="Why (shown on the household page)")],
    until: Annotated[str, typer.Option(help="Local end time, e.g. '2026-03-05 18:00'")],
    breaches: Annotated[bool, typer.Option(
        "--breaches", help="Silence breach alerts too (the household is away); by default "
        "only device offline/tamper alerts are silenced")] = False,
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """Silence a household until --until."""
    from server.domain.silences import SilenceIn, silence_household

    async def action(db: Database, settings: ServerSettings) -> int:
        end = parse_time(until, settings.notify.timezone)
        assert end is not None
        return await silence_household(
            db, SilenceIn(household_id=household, reason=reason, until=end,
                          include_breaches=breaches), actor=actor_name(actor))

    print_done(f"silence {run_with_db(config, action)}")


@silence_app.command("list")
def silence_list(
    household: Annotated[int | None, typer.Option(help="Household id")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only those applying now")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List silences, newest first."""
    from server.domain.silences import list_silences

    async def action(db: Database, _s: ServerSettings) -> list[Silence]:
        return await list_silences(db, household_id=household, active_only=active)

    print_models(run_with_db(config, action), _COLUMNS, as_json=as_json)


@silence_app.command("lift")
def silence_lift(
    silence: Annotated[int, typer.Argument(help="Silence id")],
    config: ConfigOption = None,
    actor: ActorOption = None,
) -> None:
    """End a silence now."""
    from server.domain.silences import lift_silence

    change_record(config, "silence", silence, lift_silence, actor)

"""``doorwatch followup ...``: daily follow-ups (temperatures, symptoms)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from server.cli.common import (
    ActorOption,
    ConfigOption,
    JsonOption,
    actor_name,
    parse_day,
    print_done,
    print_models,
    run_with_db,
)

if TYPE_CHECKING:
    from server.config import ServerSettings
    from server.db.base import Database

__all__ = ["followup_app"]

followup_app = typer.Typer(help="Daily follow-ups: temperatures, symptoms.", no_args_is_help=True)


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

    from server.domain.followups import FeverRule, FollowUpIn, record_followup

    async def action(db: Database, settings: ServerSettings) -> int:
        return await record_followup(db, FollowUpIn(
            household_id=household_id, day=parse_day(day) or date.today(),
            temperatures=_temperatures(temp or []), symptoms=symptoms, note=note),
            actor=actor_name(actor), rule=FeverRule.of(settings))

    print_done(f"follow-up {run_with_db(config, action)}")


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
    from server.domain.followups import FeverRule, FollowUpUpdate, update_followup

    async def action(db: Database, settings: ServerSettings) -> None:
        await update_followup(db, followup_id, FollowUpUpdate(
            temperatures=_temperatures(temp) if temp else None, symptoms=symptoms, note=note),
            actor=actor_name(actor), rule=FeverRule.of(settings))

    run_with_db(config, action)
    print_done(f"follow-up {followup_id}")

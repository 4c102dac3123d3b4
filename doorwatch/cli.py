"""The one ``doorwatch`` command, on top of every part.

Each part keeps its commands in its own ``cli`` module. This module names them
(``module:attribute`` and a one-line help) and imports a part only when one of
its commands runs: a device installed with the ``agent`` extra has no FastAPI,
and a server installed with the ``server`` extra has no OpenCV, yet both run
``doorwatch --help`` and their own commands. A test runs
``python -X importtime -m doorwatch --help`` and checks that no part is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer

# typer vendors click (its own copy, not the ``click`` distribution); a group
# subclass has to speak the vendored types.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMANDS", "LazyCommand", "app", "load_command", "main"]


@dataclass(frozen=True)
class LazyCommand:
    """A root command loaded from ``target`` (``module:attribute``) when it runs.

    The attribute is a ``typer.Typer`` (a command group) or a plain function (one
    command). ``help`` is what ``doorwatch --help`` lists without importing it.
    """

    target: str
    help: str


COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        "doorwatch.demo:demo_command",
        "Run broker, server and simulated households; show breaches being notified."),
    "schema": LazyCommand("broker.cli:schema_command",
                          "Print the JSON Schema of every wire message."),
    "analyze": LazyCommand(
        "sensors.cli:analyze_command",
        "Analyse a recording: one JSON line per passage on stdout, then a summary line."),
    "eval": LazyCommand(
        "sensors.cli:eval_command",
        "Score the analyzer on labelled clips: precision, recall and F1 per clip and overall."),
    "sim": LazyCommand(
        "agent.cli:sim_command",
        "Fleet simulator: simulated devices publishing events through the real outbox and link."),
    "agent": LazyCommand("agent.cli:agent_app", "The device service."),
    "broker": LazyCommand("broker.cli:broker_app",
                          "Mosquitto configuration, credentials and ACL."),
    "server": LazyCommand("server.cli.server:server_app",
                          "The server: consumer, rules, notifications."),
    "user": LazyCommand("server.cli.users:user_app", "Dashboard users (log-ins with roles)."),
    "device": LazyCommand("server.cli.devices:device_app",
                          "Per-device broker credentials and provisioning bundles."),
    "household": LazyCommand(
        "server.cli.households:household_app",
        "Households under quarantine, their devices, CSV import, retention purge."),
    "worker": LazyCommand("server.cli.households:worker_app", "Grid workers and supervisors."),
    "grid": LazyCommand("server.cli.households:grid_app", "Grids (网格) and their supervisors."),
    "leave": LazyCommand("server.cli.households:leave_app",
                         "Permitted leaves (hospital, testing)."),
    "followup": LazyCommand("server.cli.households:followup_app",
                            "Daily follow-ups: temperatures, symptoms."),
    "incidents": LazyCommand("server.cli.incidents:incidents_app",
                             "Incidents: list, acknowledge, resolve, export CSV."),
}


def load_command(name: str) -> click.Command:
    """Import the part behind root command ``name`` and return its click command."""
    module_name, _, attribute = COMMANDS[name].target.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    command: click.Command
    if isinstance(target, typer.Typer):
        # A group even when it has one command, so ``doorwatch server run`` keeps its word.
        command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyRoot(TyperGroup):
    """The root group: lists every command from :data:`COMMANDS`, loads one when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # Listing (help, completion of the first word) gets a placeholder with the
        # help text only; running a command goes through resolve_command below.
        if cmd_name in COMMANDS:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in COMMANDS:
            return args[0], load_command(args[0]), args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="doorwatch",
    help="Door and camera watch for households in home quarantine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_LazyRoot,
)


@app.callback()
def _root() -> None:
    """Door and camera watch for households in home quarantine."""


def main() -> None:
    """Entry point of the ``doorwatch`` console script."""
    app()

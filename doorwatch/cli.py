"""The one ``doorwatch`` command, on top of every part.

Each part keeps its commands in its own ``cli`` module. This module names them
(``module:attribute``) and imports a part only when one of its commands runs; the
one-line help that ``doorwatch --help`` lists is read from the part's source
(the command's docstring or its group's ``help=``), so it has one source. A device
installed with the ``agent`` extra has no FastAPI, and a server installed with the
``server`` extra has no OpenCV, yet both run ``doorwatch --help`` and their own
commands. A test runs
``python -X importtime -m doorwatch --help`` and checks that no part is loaded.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
    command); ``profile`` is the install extra the command needs (empty: the base
    install).
    """

    target: str
    profile: str = ""

    @property
    def help(self) -> str:
        """The command's one-line help, read from its source without importing it."""
        return _summary(self.target)


_AGENT, _SERVER = "agent", "server"

COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand("doorwatch.demo:demo_command", "dev"),
    "schema": LazyCommand("broker.cli:schema_command"),
    "analyze": LazyCommand("sensors.cli:analyze_command", _AGENT),
    "eval": LazyCommand("sensors.cli:eval_command", _AGENT),
    "sim": LazyCommand("agent.cli:sim_command", _AGENT),
    "agent": LazyCommand("agent.cli:agent_app", _AGENT),
    "broker": LazyCommand("broker.cli:broker_app", _SERVER),
    "server": LazyCommand("server.cli.server:server_app", _SERVER),
    "user": LazyCommand("server.cli.users:user_app", _SERVER),
    "device": LazyCommand("server.cli.devices:device_app", _SERVER),
    "household": LazyCommand("server.cli.households:household_app", _SERVER),
    "worker": LazyCommand("server.cli.workers:worker_app", _SERVER),
    "grid": LazyCommand("server.cli.grids:grid_app", _SERVER),
    "roster": LazyCommand("server.cli.roster:roster_app", _SERVER),
    "silence": LazyCommand("server.cli.silences:silence_app", _SERVER),
    "leave": LazyCommand("server.cli.leaves:leave_app", _SERVER),
    "followup": LazyCommand("server.cli.followups:followup_app", _SERVER),
    "incidents": LazyCommand("server.cli.incidents:incidents_app", _SERVER),
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


@cache
def _summary(target: str) -> str:
    module_name, _, attribute = target.partition(":")
    top, *inner = module_name.split(".")
    spec = importlib.util.find_spec(top)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return ""
    source = Path(spec.submodule_search_locations[0]).joinpath(*inner).with_suffix(".py")
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return (ast.get_docstring(node) or "").strip().split("\n")[0]
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets)):
            for keyword in node.value.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return ""


# Our own packages: a missing one of these is a broken install, not a missing profile.
_OURS = frozenset(
    {"ground", "doorwatch", "firmware_config", "broker", "sensors", "agent", "server"})


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
def _root(
    lang: str | None = typer.Option(
        None, "--lang", envvar="DOORWATCH_LANG",
        help="Language of messages: zh_CN or en (default: DOORWATCH_LANG, else the locale; "
        "a non-Chinese locale such as C.UTF-8 gives English)"),
) -> None:
    """Door and camera watch for households in home quarantine."""
    import os

    if lang:
        if not lang.lower().startswith(("zh", "en")):
            raise typer.BadParameter("zh_CN or en", param_hint="--lang")
        # Every command reads the language from here (ground.i18n.cli_language),
        # including those that start child processes.
        os.environ["DOORWATCH_LANG"] = lang


def main() -> None:
    """Entry point of the ``doorwatch`` console script."""
    try:
        app()
    except ModuleNotFoundError as exc:
        # An install profile without this part (a device has no FastAPI, a server
        # no OpenCV): say which profile the command needs instead of a traceback.
        name = next((arg for arg in sys.argv[1:] if arg in COMMANDS), "")
        entry = COMMANDS.get(name)
        if entry is None or not entry.profile or (exc.name or "").split(".")[0] in _OURS:
            raise
        typer.echo(f"error: `doorwatch {name}` needs the '{entry.profile}' install profile "
                   f"(pip install 'doorwatch[{entry.profile}]'); missing module: {exc.name}",
                   err=True)
        raise SystemExit(2) from None

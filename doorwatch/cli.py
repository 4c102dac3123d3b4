"""The one ``doorwatch`` command.

Each part contributes its own sub-commands from its own ``cli`` module; this
module only assembles them. Those modules import heavy libraries (OpenCV,
FastAPI, paho) inside the commands, so ``doorwatch --help`` stays fast on a Pi.
"""

from __future__ import annotations

import typer

from agent.cli import agent_app, sim_command
from broker.cli import broker_app, schema_command
from doorwatch.demo import demo_command
from sensors.cli import analyze_command, eval_command
from server.cli import register_server_commands

__all__ = ["app", "main"]

app = typer.Typer(
    name="doorwatch",
    help="Door and camera watch for households in home quarantine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command("demo")(demo_command)
app.command("schema")(schema_command)
app.command("analyze")(analyze_command)
app.command("eval")(eval_command)
app.command("sim")(sim_command)
app.add_typer(agent_app, name="agent")
app.add_typer(broker_app, name="broker")
register_server_commands(app)


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
        # Every command reads the language from here (doorwatch.i18n.cli_language),
        # including those that start child processes.
        os.environ["DOORWATCH_LANG"] = lang


def main() -> None:
    """Entry point of the ``doorwatch`` console script."""
    app()

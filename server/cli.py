"""Server-side commands: ``doorwatch server run`` and administration."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register_server_commands", "server_app"]

server_app = typer.Typer(help="The server: consumer, rules, notifications.", no_args_is_help=True)


@server_app.command("run")
def run_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="DOORWATCH_CONFIG", help="Server TOML file"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level")] = "INFO",
    http_port: Annotated[
        int | None, typer.Option(help="Serve the dashboard on this port (enables http)")
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Run without a configuration file, on the built-in "
                           "defaults (a database in the current folder, anonymous MQTT to "
                           "127.0.0.1:1883): for development only")
    ] = False,
) -> None:
    """Run the server until interrupted (SIGINT/SIGTERM)."""
    from doorwatch.errors import DoorwatchError
    from doorwatch.i18n import cli_language, t
    from doorwatch.logs import configure_logging
    from server.config import load_server_settings
    from server.service import run_server

    if config is None and not dev:
        # Defaults quietly meant a database in whatever folder this ran in and an
        # anonymous connection to this machine's broker: never what an operator meant.
        typer.echo(t("server.no_config", cli_language()), err=True)
        raise typer.Exit(2)
    configure_logging(log_level)
    # The consumer keeps the main thread busy under load; with the default 5 ms
    # GIL switch interval a notification being sent on a worker thread waits in
    # 5 ms slices and the p99 door-to-phone latency doubled in bench/latency.py.
    sys.setswitchinterval(0.0005)
    try:
        settings = load_server_settings(config)
        if http_port is not None:
            settings.http = settings.http.model_copy(update={"enabled": True, "port": http_port})
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run_server(settings)

    try:
        asyncio.run(main())
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def register_server_commands(app: typer.Typer) -> None:
    """Attach the server's command groups to the root CLI."""
    from server.cli_users import user_app
    from server.device_cli import device_app

    app.add_typer(server_app, name="server")
    app.add_typer(user_app, name="user")
    app.add_typer(device_app, name="device")
    register_admin_commands(app)


def register_admin_commands(app: typer.Typer) -> None:
    """The server domain's groups (issue 6): administration and the incident log."""
    from server.cli_admin import followup_app, grid_app, household_app, leave_app, worker_app
    from server.cli_incidents import incidents_app

    app.add_typer(household_app, name="household")
    app.add_typer(worker_app, name="worker")
    app.add_typer(grid_app, name="grid")
    app.add_typer(leave_app, name="leave")
    app.add_typer(followup_app, name="followup")
    app.add_typer(incidents_app, name="incidents")

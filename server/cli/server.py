"""Server-side commands: ``doorwatch server run`` and administration."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["server_app"]

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
    from ground.errors import DoorwatchError
    from ground.logs import configure_logging
    from server.cli.common import require_config
    from server.config import load_server_settings
    from server.service import run_server

    require_config(config, dev=dev)
    configure_logging(log_level)
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


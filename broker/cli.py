"""``doorwatch schema`` and ``doorwatch broker init|run``."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["broker_app", "schema_command"]

broker_app = typer.Typer(help="Mosquitto configuration, credentials and ACL.", no_args_is_help=True)


def schema_command() -> None:
    """Print the JSON Schema of every wire message."""
    from broker.messages import json_schemas

    typer.echo(json.dumps(json_schemas(), indent=2, ensure_ascii=False))


@broker_app.command("init")
def init_command(
    directory: Annotated[Path, typer.Argument(help="Folder to create the broker files in")],
    port: Annotated[int, typer.Option(help="Listener port")] = 1883,
    host: Annotated[str, typer.Option(help="Listener address")] = "127.0.0.1",
) -> None:
    """Create Mosquitto config, ACL and password file (owner-only permissions)."""
    from broker.broker_dir import BrokerDir

    broker = BrokerDir(directory.resolve())
    if broker.config_file.exists():
        typer.echo(f"{broker.config_file} exists; refusing to overwrite", err=True)
        raise typer.Exit(2)
    broker.init(port=port, host=host)
    typer.echo(f"broker files written to {broker.path} (listener {host}:{port})")


@broker_app.command("run")
def run_command(
    directory: Annotated[Path, typer.Argument(help="Folder made by `broker init`")],
) -> None:
    """Start Mosquitto with the files in DIRECTORY and wait until it exits."""
    from broker.broker_dir import BrokerDir
    from broker.runner import start_mosquitto
    from doorwatch.errors import DoorwatchError

    broker = BrokerDir(directory.resolve())
    try:
        process = start_mosquitto(broker)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"mosquitto running (pid {process.pid}) on {broker.host}:{broker.port}")
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        sys.exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        process.wait()

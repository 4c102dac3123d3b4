"""``doorwatch schema`` and ``doorwatch broker init|run``."""

from __future__ import annotations

import json
import signal
import subprocess
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
    port: Annotated[int, typer.Option(help="TLS listener port (devices)")] = 8883,
    host: Annotated[
        str, typer.Option(help="Address the TLS listener binds to (default: all)")] = "",
    hostname: Annotated[
        list[str] | None,
        typer.Option(help="Name or address devices use to reach the broker (repeatable; "
                     "goes into the server certificate; the first is written into bundles)"),
    ] = None,
    loopback_port: Annotated[
        int | None,
        typer.Option(help="Also open a plaintext listener on 127.0.0.1:PORT for a server on "
                     "this machine (default: none)"),
    ] = None,
) -> None:
    """Create CA, server certificate, Mosquitto config, ACL and password file (owner-only)."""
    from broker.mosquitto.directory import BrokerDir
    from ground.i18n import cli_language, t

    lang = cli_language()
    broker = BrokerDir(directory.resolve())
    if broker.config_file.exists() or broker.ca_key_file.exists():
        typer.echo(t("broker.exists", lang, path=broker.path), err=True)
        raise typer.Exit(2)
    broker.init(port=port, host=host, loopback_port=loopback_port, hostnames=hostname)
    state = broker.state()
    typer.echo(t("broker.written", lang, path=broker.path))
    typer.echo(t("broker.tls_listener", lang, where=f"{host or '*'}:{port}",
                 names=", ".join(state.hostnames)))
    if loopback_port is not None:
        typer.echo(t("broker.loopback_listener", lang, port=loopback_port))
    typer.echo(t("broker.server_account", lang, user=state.server_user, file=broker.state_file))
    typer.echo(t("broker.ca_file", lang, file=broker.ca_cert_file))


@broker_app.command("run")
def run_command(
    directory: Annotated[Path, typer.Argument(help="Folder made by `broker init`")],
) -> None:
    """Start Mosquitto with the files in DIRECTORY and wait until it exits."""
    from broker.mosquitto.directory import BrokerDir
    from broker.mosquitto.runner import release_pid_file, start_mosquitto
    from ground.errors import DoorwatchError
    from ground.i18n import cli_language, t

    broker = BrokerDir(directory.resolve())
    # Signals are caught before Mosquitto starts: one arriving while it comes up (the
    # pid file already written) must still stop it and remove the file, not orphan both.
    started: list[subprocess.Popen[bytes]] = []
    stop_asked: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not started:
            stop_asked.append(signum)
        elif signum == signal.SIGHUP:
            started[0].send_signal(signal.SIGHUP)  # "re-read your files", as for Mosquitto
        else:
            started[0].terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    try:
        process = start_mosquitto(broker)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    started.append(process)
    if signal.SIGTERM in stop_asked:
        process.terminate()
    where = f"TLS {broker.host}:{broker.port}"
    if broker.loopback_port is not None:
        where += f", 127.0.0.1:{broker.loopback_port}"
    typer.echo(t("broker.running", cli_language(), pid=process.pid, where=where))
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        code = process.wait()
    finally:
        release_pid_file(broker, process.pid)
    sys.exit(code)

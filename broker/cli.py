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


@broker_app.command("init-rabbitmq")
def init_rabbitmq_command(
    directory: Annotated[Path, typer.Argument(help="Folder to create the cluster's files in")],
    node: Annotated[
        list[str],
        typer.Option(help="A cluster node as NAME@HOST, e.g. rabbit@broker-1 (repeatable; "
                     "HOST is the address devices and servers use; the first goes first "
                     "into device bundles)"),
    ],
    mqtt_port: Annotated[int, typer.Option(help="MQTT over TLS port on every node")] = 8883,
    amqp_port: Annotated[int, typer.Option(help="AMQP port on every node (servers)")] = 5672,
    hostname: Annotated[
        list[str] | None, typer.Option(help="Extra name for the nodes' certificate")] = None,
) -> None:
    """The RabbitMQ profile: CA, node certificate, each node's rabbitmq.conf, definitions."""
    from broker.rabbitmq.broker_dir import RabbitBrokerDir, RabbitNode, is_rabbitmq_dir

    broker = RabbitBrokerDir(directory.resolve())
    if is_rabbitmq_dir(broker.path) or broker.ca_key_file.exists():
        typer.echo(f"{broker.path} already holds a broker; refusing to overwrite", err=True)
        raise typer.Exit(2)
    nodes = []
    for spec in node:
        name, at, host = spec.partition("@")
        if not name or not at or not host:
            typer.echo(f"--node {spec!r}: expected NAME@HOST (e.g. rabbit@broker-1)", err=True)
            raise typer.Exit(2)
        nodes.append(RabbitNode(name=spec, host=host, mqtt_port=mqtt_port, amqp_port=amqp_port))
    broker.init(nodes, hostnames=hostname)
    typer.echo(f"RabbitMQ cluster files written to {broker.path}")
    for item in nodes:
        typer.echo(f"  {item.name}: {broker.node_config_file(item).name} -> "
                   "/etc/rabbitmq/rabbitmq.conf, with ca.crt, server.crt, server.key")
    typer.echo("  on every node: rabbitmq-plugins enable rabbitmq_mqtt; join the nodes "
               "(rabbitmqctl join_cluster)")
    typer.echo(f"  once, before any device connects: rabbitmqctl import_definitions "
               f"{broker.definitions_file}")
    typer.echo(f"  server account: doorwatch-server (password in {broker.state_file}); "
               "servers: broker = \"rabbitmq\", [amqp] nodes = every node's HOST:"
               f"{amqp_port}")
    typer.echo(f"  devices: provisioned with --broker-dir {broker.path} (bundles list every "
               "node)")


@broker_app.command("add-server")
def add_server_command(
    directory: Annotated[Path, typer.Argument(help="Folder made by `broker init`")],
    name: Annotated[str, typer.Argument(help="Name of the server instance (a-z, 0-9, '-')")],
) -> None:
    """Create the broker account of a further server instance (each needs its own).

    The broker makes every client's id its username, so two server instances on
    one account would keep taking each other's session. Prints the account; its
    password is in the broker directory's state file.
    """
    from broker.mosquitto.directory import BrokerDir
    from ground.errors import DoorwatchError

    broker = BrokerDir(directory.resolve())
    try:
        user, _password = broker.add_server(name)
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    reloaded = broker.reload()
    typer.echo(f"server account {user} created (password in {broker.state_file}, "
               "server_accounts); in that instance's TOML: [mqtt] username = "
               f"\"{user}\", password = ...")
    if not reloaded:
        typer.echo("no running broker found: reload it yourself (kill -HUP) or start it")


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

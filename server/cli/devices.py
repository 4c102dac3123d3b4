"""``doorwatch device provision|revoke|rotate``: per-device broker credentials and bundles.

Run on the broker machine by an administrator: each command changes the
server database (``--config``, the server's TOML) and the broker directory
(``--broker-dir``, made by ``doorwatch broker init``), then reloads Mosquitto.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

__all__ = ["device_app"]

device_app = typer.Typer(help="Per-device broker credentials and provisioning bundles.",
                         no_args_is_help=True)

T = TypeVar("T")

BrokerDirOption = Annotated[
    Path, typer.Option("--broker-dir", envvar="DOORWATCH_BROKER_DIR",
                       help="Broker directory made by `doorwatch broker init`")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="DOORWATCH_CONFIG",
                              help="Server TOML file (for the database)")]


def _lang() -> str:
    from ground.i18n import cli_language

    return cli_language()


def _run(config: Path | None, broker_dir: Path, action: Callable[..., Awaitable[T]]) -> T:
    """Open the server database and the broker directory, run ``action(db, broker)``."""
    from broker.mosquitto.directory import BrokerDir
    from broker.rabbitmq.broker_dir import RabbitBrokerDir, is_rabbitmq_dir
    from ground.errors import DoorwatchError
    from ground.i18n import t
    from server.cli.common import require_config
    from server.config import load_server_settings
    from server.db.connect import open_database
    from server.domain.errors import UnknownDeviceError
    from server.domain.provisioning import RotationInProgressError

    require_config(config)
    # The folder tells the profile: Mosquitto's files, or a RabbitMQ cluster's.
    broker: BrokerDir | RabbitBrokerDir = (
        RabbitBrokerDir(broker_dir.resolve()) if is_rabbitmq_dir(broker_dir.resolve())
        else BrokerDir(broker_dir.resolve()))

    async def main() -> T:
        settings = load_server_settings(config)
        broker.check()
        db = await open_database(settings.database_url)
        try:
            return await action(db, broker)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except UnknownDeviceError as exc:
        typer.echo(t("cli.device_unknown", _lang(), device=exc.device_id), err=True)
        raise typer.Exit(1) from None
    except RotationInProgressError as exc:
        typer.echo(t("device.rotation_in_progress", _lang(), device=exc.device_id), err=True)
        raise typer.Exit(1) from None
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _reload_note(reloaded: bool, broker_dir: Path) -> None:
    from ground.i18n import t

    if not reloaded:
        typer.echo(t("device.not_reloaded", _lang(), pid_file=broker_dir / "mosquitto.pid"),
                   err=True)


@device_app.command("provision")
def provision_command(
    device_id: Annotated[str, typer.Option("--id", help="New device id (a-z, 0-9, - and _)")],
    broker_dir: BrokerDirOption = Path("broker"),
    household: Annotated[
        int | None, typer.Option(help="Household id the device watches")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Bundle file to write (default: ./<id>.bundle.json)")
    ] = None,
    broker_host: Annotated[
        str | None, typer.Option(help="Broker address for the device (default: from init)")
    ] = None,
    broker_port: Annotated[
        int | None, typer.Option(help="Broker TLS port for the device (default: from init)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register a device, create its credentials, reload Mosquitto, write its bundle."""
    from ground.i18n import t
    from server.domain.provisioning import provision_device

    bundle = (out or Path(f"{device_id}.bundle.json")).resolve()
    reloaded = _run(config, broker_dir, lambda db, broker: provision_device(
        db, broker, device_id, household_id=household, bundle_path=bundle,
        broker_host=broker_host, broker_port=broker_port))
    typer.echo(t("device.provisioned", _lang(), device=device_id, bundle=bundle))
    _reload_note(reloaded, broker_dir)


@device_app.command("revoke")
def revoke_command(
    device_id: Annotated[str, typer.Argument(help="Device id")],
    broker_dir: BrokerDirOption = Path("broker"),
    config: ConfigOption = None,
) -> None:
    """Remove a device's credentials; Mosquitto disconnects it on reload. History stays."""
    from ground.i18n import t
    from server.domain.provisioning import revoke_device

    reloaded = _run(config, broker_dir, lambda db, broker: revoke_device(db, broker, device_id))
    typer.echo(t("device.revoked", _lang(), device=device_id))
    _reload_note(reloaded, broker_dir)


@device_app.command("rotate")
def rotate_command(
    device_id: Annotated[str, typer.Argument(help="Device id")],
    broker_dir: BrokerDirOption = Path("broker"),
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the device's acknowledgement")] = 60.0,
    config: ConfigOption = None,
) -> None:
    """Send a connected device a new password; switch the broker once it has acknowledged."""
    from ground.i18n import t
    from server.domain.provisioning import rotate_device

    result = _run(config, broker_dir, lambda db, broker: rotate_device(
        db, broker, device_id, ack_timeout_s=timeout))
    key = "device.rotated" if result.reconnected else "device.rotated_not_back"
    typer.echo(t(key, _lang(), device=device_id))
    _reload_note(result.reloaded, broker_dir)

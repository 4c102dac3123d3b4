"""Device credentials: provision, revoke, rotate (``doorwatch device ...``).

These run on the broker machine as an administrator: they change the
server's database (device registry, audit log) and the broker directory
(password file), then reload Mosquitto with SIGHUP. Mosquitto re-checks every
connected client on reload, so a revoked device is disconnected at once.

Rotation never loses events and never locks a device out (see
``agent/credentials.py`` for the device's half):

1. the new password goes to the device in a ``rotate_credentials`` command
   (over TLS, on its own command topic, which only it may read);
2. the device stores it as pending and acknowledges;
3. only then is the broker switched to the new password and reloaded; the
   device is disconnected, reconnects with the new password, and resends
   whatever was in flight (its outbox deletes a record only on PUBACK).

If the device does not acknowledge in time nothing changes on the broker.

One rotation of a device at a time: a second one while the first runs (two
operators, a retry in another terminal) would send the device another password
and race the first to the broker's password file. It is refused at once
(:class:`RotationInProgressError`), by a lock file per device in the broker
directory, which the kernel releases if the rotating process dies. Rotations
of different devices take turns on the broker connection: the broker names
every client by its username (``use_username_as_clientid``), so two admin
connections at once would take over each other's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from broker.messages import RotateCredentialsCommand, utc_now
from broker.mosquitto.directory import RESERVED_PREFIX, RESERVED_USERS, BrokerDir
from broker.mosquitto.passwords import new_secret
from broker.rabbitmq.broker_dir import RabbitBrokerDir
from broker.topics import is_valid_device_id
from firmware_config.bundle import ProvisioningBundle, write_bundle
from ground.errors import DoorwatchError
from ground.timeutil import now_ts
from server.admin import register_device
from server.db.base import Database
from server.domain.audit import audit
from server.domain.devices import get_device
from server.mqtt.admin_client import AdminLink

__all__ = [
    "ProvisioningError",
    "RotationInProgressError",
    "RotationResult",
    "provision_device",
    "revoke_device",
    "rotate_device",
]


class ProvisioningError(DoorwatchError, ValueError):
    """A provisioning action cannot be done; carries the device id."""

    def __init__(self, device_id: str, message: str):
        self.device_id = device_id
        super().__init__(f"device {device_id}: {message}")


class RotationInProgressError(ProvisioningError):
    """Another rotation of the same device is running; nothing was changed."""

    def __init__(self, device_id: str):
        # Not ProvisioningError's "device X: ..." form: this sentence names the device itself.
        self.device_id = device_id
        DoorwatchError.__init__(self, f"a rotation is already in progress for device {device_id}")


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block; yields whether
    it was had (False only when ``wait`` is False and another holder has it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True  # released with the descriptor, also when the process dies
    finally:
        os.close(fd)


def _check_id(device_id: str) -> None:
    if device_id in RESERVED_USERS or device_id.startswith(RESERVED_PREFIX):
        raise ProvisioningError(device_id, "this name is reserved for the broker's own accounts "
                                f"(no device id may start with {RESERVED_PREFIX!r})")
    if not is_valid_device_id(device_id):
        raise ProvisioningError(device_id, "invalid id: use 2-64 of a-z, 0-9, '-' and '_'")


# Either profile's broker directory: the same faces (users, set_password, reload, ...).
AnyBrokerDir = BrokerDir | RabbitBrokerDir


def _device_toml(broker: AnyBrokerDir, device_id: str, host: str | None,
                 port: int | None) -> str:
    state = broker.state()
    mqtt: dict[str, object] = {"host": host or state.public_host, "port": port or state.port,
                               "tls": True}
    if isinstance(broker, RabbitBrokerDir) and broker.device_brokers():
        mqtt["brokers"] = broker.device_brokers()  # a cluster: every other node, in order
    return tomli_w.dumps({"device_id": device_id, "mqtt": mqtt})


async def provision_device(
    db: Database,
    broker: AnyBrokerDir,
    device_id: str,
    *,
    household_id: int | None,
    bundle_path: Path,
    broker_host: str | None = None,
    broker_port: int | None = None,
    actor: str = "admin",
) -> bool:
    """Register ``device_id``, give it a password, write its bundle; return whether reloaded.

    A device id that already has credentials is refused: a replacement Pi gets
    a new id (its seq numbers start again at 1, which the server would take
    for duplicates under the old id); use :func:`rotate_device` for new
    credentials on the same device.
    """
    _check_id(device_id)
    if device_id in broker.users():
        raise ProvisioningError(
            device_id, "already provisioned (use `device rotate` for new credentials, or "
            "provision a new id for a replacement device and revoke this one)")
    password = new_secret()
    bundle = ProvisioningBundle(
        device_id=device_id, created_at=utc_now(),
        device_toml=_device_toml(broker, device_id, broker_host, broker_port),
        ca_pem=broker.ca_cert_file.read_text(encoding="utf-8"), password=password)
    await register_device(db, device_id, household_id=household_id, actor=actor)
    async with db.transaction() as tx:
        await tx.execute("UPDATE devices SET revoked_at = NULL WHERE device_id = ?", (device_id,))
        await audit(tx, actor, "device.provision", f"device:{device_id}", str(bundle_path))
    broker.set_password(device_id, password)
    write_bundle(bundle_path, bundle)
    return broker.reload()


async def revoke_device(
    db: Database, broker: AnyBrokerDir, device_id: str, *, actor: str = "admin"
) -> bool:
    """Remove the device's credentials and disconnect it; return whether Mosquitto reloaded.

    The device's row and history stay (marked revoked); it can be provisioned again.
    """
    _check_id(device_id)
    await get_device(db, device_id)  # an id the server never registered: a typo, say so
    if not broker.remove_user(device_id):
        raise ProvisioningError(device_id, "has no broker credentials (never provisioned, or "
                                           "already revoked)")
    reloaded = broker.reload()
    async with db.transaction() as tx:
        await tx.execute("UPDATE devices SET revoked_at = ? WHERE device_id = ?",
                         (now_ts(), device_id))
        await audit(tx, actor, "device.revoke", f"device:{device_id}", None)
    return reloaded


@dataclass(frozen=True)
class RotationResult:
    """What a rotation achieved."""

    device_id: str
    reloaded: bool
    reconnected: bool


async def rotate_device(
    db: Database,
    broker: AnyBrokerDir,
    device_id: str,
    *,
    ack_timeout_s: float = 60.0,
    reconnect_timeout_s: float = 30.0,
    actor: str = "admin",
) -> RotationResult:
    """Give a connected device a new password without losing its events.

    Raises :class:`ProvisioningError` (broker unchanged) if the device does not
    acknowledge within ``ack_timeout_s``; ``reconnected`` tells whether it was
    seen back online with the new password within ``reconnect_timeout_s``.
    """
    _check_id(device_id)
    with _locked(broker.path / f".rotate-{device_id}.lock", wait=False) as mine:
        if not mine:
            raise RotationInProgressError(device_id)
        return await _rotate(db, broker, device_id, ack_timeout_s=ack_timeout_s,
                             reconnect_timeout_s=reconnect_timeout_s, actor=actor)


async def _rotate(db: Database, broker: AnyBrokerDir, device_id: str, *, ack_timeout_s: float,
                  reconnect_timeout_s: float, actor: str) -> RotationResult:
    """:func:`rotate_device` once the device is ours to rotate."""
    await get_device(db, device_id)
    if device_id not in broker.users():
        raise ProvisioningError(device_id, "has no broker credentials (provision it first)")
    password = new_secret()
    command = RotateCredentialsCommand(device_id=device_id, issued_at=utc_now(),
                                       password=password)

    def exchange() -> tuple[bool, bool]:
        # Other devices' rotations wait here for the one admin connection (module doc).
        with _locked(broker.path / ".admin-link.lock", wait=True), \
                AdminLink(broker, device_id) as link:
            link.send(command)
            ack = link.wait_ack(command.command_id, ack_timeout_s)
            if ack is None or not ack.ok:
                why = "did not acknowledge" if ack is None else f"refused: {ack.reason}"
                raise ProvisioningError(
                    device_id, f"{why} within {ack_timeout_s:g} s; its broker password is "
                    "unchanged (is it online? run `device rotate` again later)")
            link.expect_reconnect()
            broker.set_password(device_id, password)
            reloaded = broker.reload()
            return reloaded, link.wait_online(reconnect_timeout_s) if reloaded else False

    reloaded, reconnected = await asyncio.to_thread(exchange)
    async with db.transaction() as tx:
        await tx.execute("UPDATE devices SET credentials_rotated_at = ? WHERE device_id = ?",
                         (now_ts(), device_id))
        await audit(tx, actor, "device.rotate", f"device:{device_id}",
                    "reconnected" if reconnected else "not yet seen back online")
    return RotationResult(device_id, reloaded, reconnected)

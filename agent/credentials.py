"""The device's broker password on disk, its rotation, and installing a provisioning bundle.

The password lives in ``<data_dir>/credentials.json`` (owner-only; the agent
refuses to start when others can read it). Rotation is two-phase so no event
is lost and the device never locks itself out:

1. a ``rotate_credentials`` command (over TLS, on the device's own command
   topic) carries the new password; the store keeps it as ``pending`` beside
   ``current`` and the agent acknowledges through its outbox;
2. only after that acknowledgement does the server switch the broker's
   password file and reload Mosquitto, which disconnects the device;
3. the link reconnects trying ``pending`` first, then ``current``, then the
   configured password; whichever the broker accepts becomes ``current``.

Events are never at risk: the outbox deletes a record only on its PUBACK, so
whatever was in flight when the broker cut the connection is sent again.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config_file import CONFIG_DIR, CONFIG_NAME
from firmware_config.bundle import read_bundle
from firmware_config.device_config import DeviceConfig, load_device_config
from ground.errors import ConfigError
from ground.files import check_private, write_private

__all__ = [
    "CREDENTIALS_FILE",
    "CredentialStore",
    "InstalledBundle",
    "install_bundle",
    "install_bundle_command",
]

CREDENTIALS_FILE = "credentials.json"


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: str | None = Field(None, repr=False, description="Password the broker last accepted")
    pending: str | None = Field(None, repr=False, description="Password offered by a rotation")


class CredentialStore:
    """The device's broker passwords (current and, during a rotation, pending)."""

    def __init__(self, path: Path, *, fresh: bool = False):
        self.path = path
        self._lock = threading.Lock()
        # ``fresh``: about to be replaced by install(), so an old file is not read.
        self._data = _Stored() if fresh else self._load()

    def _load(self) -> _Stored:
        if not self.path.exists():
            return _Stored()
        check_private(self.path)
        try:
            return _Stored.model_validate_json(self.path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"corrupt credentials file: {first['msg']}", path=self.path,
                              field=".".join(str(p) for p in first["loc"]) or None) from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, self._data.model_dump_json() + "\n")

    @property
    def pending(self) -> str | None:
        """A password offered by a rotation and not yet accepted by the broker."""
        return self._data.pending

    @property
    def current(self) -> str | None:
        """The password the broker last accepted."""
        return self._data.current

    def candidates(self, configured: str | None = None) -> list[str]:
        """Passwords to try, best first: pending, current, then the configured one."""
        found: list[str] = []
        for password in (self._data.pending, self._data.current, configured):
            if password and password not in found:
                found.append(password)
        return found

    def install(self, password: str) -> None:
        """Replace everything with ``password`` (a new provisioning bundle)."""
        with self._lock:
            self._data = _Stored(current=password)
            self._save()

    def offer(self, password: str) -> None:
        """Keep ``password`` as pending (durably) until the broker accepts it."""
        with self._lock:
            self._data = _Stored(current=self._data.current, pending=password)
            self._save()

    def confirm(self, password: str) -> bool:
        """The broker accepted ``password``: make it current; return whether anything changed."""
        with self._lock:
            if self._data.current == password and self._data.pending is None:
                return False
            pending = None if self._data.pending == password else self._data.pending
            self._data = _Stored(current=password, pending=pending)
            self._save()
            return True


@dataclass(frozen=True)
class InstalledBundle:
    """Where ``install_bundle`` put things."""

    device_id: str
    config_file: Path
    ca_file: Path
    credentials_file: Path


def install_bundle(
    bundle_path: Path, config_dir: Path, *, data_dir: Path | None = None
) -> InstalledBundle:
    """Install a provisioning bundle: device TOML and CA into ``config_dir``, password into data.

    The bundle is verified completely before anything is written, so a corrupt
    bundle leaves the device as it was. ``agent.toml`` is put in place last:
    its appearance is what starts the agent (``doorwatch-agent.path``), so the
    CA and the password file must already be there, and the password file
    must already belong to the service. Run as root (the installer's ``sudo``),
    the password file is given to the owner of the data folder, which the
    package made the ``doorwatch`` user's.
    """
    bundle = read_bundle(bundle_path)
    settings: dict[str, Any] = bundle.device_settings()
    config_dir.mkdir(parents=True, exist_ok=True)
    ca_file = config_dir / "ca.crt"
    if data_dir is not None:
        settings["data_dir"] = str(data_dir)
    # Where the password goes: the data folder (the service's writable place).
    credentials_file = Path(settings.get("data_dir") or DeviceConfig.model_fields[
        "data_dir"].default) / CREDENTIALS_FILE
    mqtt = dict(settings.get("mqtt", {}))
    mqtt.update({"tls": True, "ca_file": str(ca_file), "credentials_file": str(credentials_file)})
    mqtt.pop("password", None)  # the password lives in the credentials file only
    settings["mqtt"] = mqtt
    config_file = config_dir / CONFIG_NAME
    # Neither holds a secret (the password goes to the credentials file below), and the
    # service reads them as the `doorwatch` user while the installer runs this as root.
    staged = config_file.with_name(config_file.name + ".new.toml")
    _write_readable(staged, tomli_w.dumps(settings))
    try:
        load_device_config(staged, use_override=False)  # what we wrote must load as-is
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    store = CredentialStore(credentials_file, fresh=True)
    store.install(bundle.password)
    _give_to_folder_owner(store.path)
    _write_readable(ca_file, bundle.ca_pem)
    os.replace(staged, config_file)  # last: the path unit starts the agent on it
    return InstalledBundle(bundle.device_id, config_file, ca_file, store.path)


def _give_to_folder_owner(path: Path) -> None:
    """Make ``path`` its folder owner's when root wrote it (the service reads it, not root).

    The agent refuses a password file that is not its own (``check_private``), so a
    root-owned one would keep a freshly installed device from ever connecting.
    """
    if os.geteuid() != 0:
        return
    folder = path.parent.stat()
    if path.stat().st_uid != folder.st_uid:
        os.chown(path, folder.st_uid, folder.st_gid)



def _write_readable(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by everyone (mode 0644)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.chmod(0o644)
    os.replace(tmp, path)


def install_bundle_command(
    bundle: Annotated[
        Path, typer.Argument(help="Provisioning bundle from `doorwatch device provision`")],
    config_dir: Annotated[
        Path, typer.Option(help="Where to put agent.toml and ca.crt")] = CONFIG_DIR,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Override the bundle's data folder (the password is kept there)"),
    ] = None,
) -> None:
    """Install a provisioning bundle: configuration, broker CA and the device's password."""
    from ground.errors import DoorwatchError
    from ground.i18n import explicit_language, t

    try:
        done = install_bundle(bundle, config_dir, data_dir=data_dir)
        language = explicit_language() or load_device_config(
            done.config_file, use_override=False).language
    except DoorwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(t("agent.bundle_installed", language, device=done.device_id,
                 config=done.config_file, ca=done.ca_file, credentials=done.credentials_file,
                 bundle=bundle))

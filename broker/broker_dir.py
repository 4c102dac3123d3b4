"""A broker directory: Mosquitto config, password file and ACL made from our templates.

``doorwatch broker init DIR`` creates one; tests create one in a temporary
folder so the broker they start runs the configuration we ship. The files
hold secrets, so they are written with owner-only permissions.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from broker.passwords import hash_password, new_secret
from broker.topics import is_valid_device_id
from doorwatch.errors import ConfigError

__all__ = ["SERVER_USER", "BrokerDir"]

SERVER_USER = "doorwatch-server"
_STATE_FILE = "doorwatch-broker.json"


def _template(name: str) -> str:
    return resources.files("broker.mosquitto").joinpath(name).read_text(encoding="utf-8")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` so that only the owner can read it, replacing atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class BrokerDir:
    """The files of one broker installation, rooted at ``path``."""

    path: Path

    @property
    def config_file(self) -> Path:
        """The mosquitto.conf to start Mosquitto with."""
        return self.path / "mosquitto.conf"

    @property
    def password_file(self) -> Path:
        """Mosquitto password file (hashes only)."""
        return self.path / "passwd"

    @property
    def acl_file(self) -> Path:
        """Mosquitto ACL file."""
        return self.path / "acl"

    @property
    def state_file(self) -> Path:
        """Our own record of the listener port and the server's credentials."""
        return self.path / _STATE_FILE

    @property
    def pid_file(self) -> Path:
        """Where ``broker run`` records Mosquitto's pid (for reloads)."""
        return self.path / "mosquitto.pid"

    def init(self, *, port: int, host: str = "127.0.0.1", log_file: bool = True) -> None:
        """Create config, ACL, an empty password file and the server account."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.path / "data").mkdir(exist_ok=True, mode=0o700)
        server_password = new_secret()
        state = {"host": host, "port": port, "server_user": SERVER_USER,
                 "server_password": server_password}
        _write_private(self.state_file, json.dumps(state, indent=2) + "\n")
        log_dest = f"file {self.path / 'mosquitto.log'}" if log_file else "stderr"
        listeners = f"listener {port} {host}\n"
        _write_private(self.config_file, _template("mosquitto.conf.template").format(
            dir=self.path, log_dest=log_dest, listeners=listeners, run_user=getpass.getuser()))
        _write_private(self.acl_file, _template("acl.template").format(server_user=SERVER_USER))
        _write_private(self.password_file, "")
        self.set_password(SERVER_USER, server_password)

    def _state(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("not a broker directory (run `doorwatch broker init`)",
                              path=self.state_file) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"corrupt: {exc}", path=self.state_file) from None
        return data

    @property
    def port(self) -> int:
        """The listener port chosen at init."""
        return int(str(self._state()["port"]))

    @property
    def host(self) -> str:
        """The listener address chosen at init."""
        return str(self._state()["host"])

    @property
    def server_password(self) -> str:
        """The server account's password."""
        return str(self._state()["server_password"])

    def _entries(self) -> dict[str, str]:
        entries: dict[str, str] = {}
        if self.password_file.exists():
            for line in self.password_file.read_text(encoding="utf-8").splitlines():
                if ":" in line:
                    user, hashed = line.split(":", 1)
                    entries[user] = hashed
        return entries

    def _save_entries(self, entries: dict[str, str]) -> None:
        text = "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items()))
        _write_private(self.password_file, text)

    def set_password(self, user: str, password: str) -> None:
        """Add or replace ``user`` in the password file (call :meth:`reload` after)."""
        if user != SERVER_USER and not is_valid_device_id(user):
            raise ConfigError(f"invalid device id {user!r}", path=self.password_file)
        entries = self._entries()
        entries[user] = hash_password(password)
        self._save_entries(entries)

    def remove_user(self, user: str) -> bool:
        """Remove ``user`` from the password file; return whether it was there."""
        entries = self._entries()
        found = entries.pop(user, None) is not None
        self._save_entries(entries)
        return found

    def users(self) -> list[str]:
        """Usernames in the password file."""
        return sorted(self._entries())

    def reload(self) -> bool:
        """Ask a running Mosquitto (started by ``broker run``) to re-read its files."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
        return True

"""A broker directory: Mosquitto config, CA, server certificate, password file and ACL.

``doorwatch broker init DIR`` creates one; tests create one in a temporary
folder so the broker they start runs the configuration we ship. Secrets (CA
key, server key, password file, our state file) are written owner-only, and
:meth:`BrokerDir.check` refuses to start Mosquitto when they are not.

Listeners (see docs/security.md):

* TLS (default 8883) for devices and remote server instances, with
  ``use_username_as_clientid`` so a device cannot take over another's session;
* optionally a plaintext listener bound to 127.0.0.1 only, for a server on the
  same machine (and for tests and the demo). Off unless ``loopback_port`` is given.
"""

from __future__ import annotations

import getpass
import os
import signal
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.messages import MAX_PAYLOAD_BYTES
from broker.mosquitto.passwords import hash_password, new_secret
from broker.mosquitto.tls import check_key_pair, make_ca, make_server_certificate
from broker.topics import is_valid_device_id
from ground.errors import ConfigError
from ground.files import check_private, write_private

__all__ = ["ADMIN_USER", "DEFAULT_TLS_PORT", "RESERVED_USERS", "SERVER_USER", "BrokerDir",
           "BrokerState"]

SERVER_USER = "doorwatch-server"
# `doorwatch device rotate` talks to devices as this account, never as the server:
# on the TLS listener the client id is the username, so sharing the server's
# account would take over (and, with a clean session, wipe) the server's session.
ADMIN_USER = "doorwatch-admin"
RESERVED_USERS = (SERVER_USER, ADMIN_USER)
DEFAULT_TLS_PORT = 8883
_STATE_FILE = "doorwatch-broker.json"
# Topic, headers and JSON around the base64 snapshot fit easily in 512 KiB more.
_MAX_PACKET = MAX_PAYLOAD_BYTES + 512 * 1024


class BrokerState(BaseModel):
    """What ``broker init`` decided, kept beside the files (owner-only: holds a secret)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="Address the TLS listener binds to ('' = all)")
    port: int = Field(ge=1, le=65535, description="TLS listener port")
    loopback_port: int | None = Field(
        None, ge=1, le=65535, description="Plaintext listener on 127.0.0.1, or none"
    )
    public_host: str = Field(description="Broker address written into device bundles")
    hostnames: list[str] = Field(description="Names/addresses in the server certificate")
    server_user: str = Field(SERVER_USER, description="The server's broker account")
    server_password: str = Field(description="The server account's password")
    admin_password: str | None = Field(None, description="The admin tools' account password")


def _template(name: str) -> str:
    return resources.files("broker.mosquitto").joinpath(name).read_text(encoding="utf-8")


def _listeners(directory: Path, state: BrokerState) -> str:
    bind = f" {state.host}" if state.host else ""
    text = (
        "# Devices (and server instances on other machines) connect here, with TLS only.\n"
        f"listener {state.port}{bind}\n"
        f"certfile {directory}/server.crt\n"
        f"keyfile {directory}/server.key\n"
        f"cafile {directory}/ca.crt\n"
        "tls_version tlsv1.2\n"
        "# The client id is replaced by the username (= device id), so a device that\n"
        "# connects with another device's client id cannot kick that device off.\n"
        "use_username_as_clientid true\n"
    )
    if state.loopback_port is not None:
        text += (
            "\n# Plaintext, but reachable from this machine only: for a server on the\n"
            "# same box. Same password file and ACL. Server instances keep their own\n"
            "# client ids here (several may share the server account).\n"
            f"listener {state.loopback_port} 127.0.0.1\n"
        )
    return text


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
        """Our own record of the listeners and the server's credentials."""
        return self.path / _STATE_FILE

    @property
    def pid_file(self) -> Path:
        """Where ``broker run`` records Mosquitto's pid (for reloads)."""
        return self.path / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        """Mosquitto's log."""
        return self.path / "mosquitto.log"

    @property
    def ca_cert_file(self) -> Path:
        """The CA certificate devices verify the broker with (public)."""
        return self.path / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        """The CA's private key (owner-only; needed only to renew the server certificate)."""
        return self.path / "ca.key"

    @property
    def server_cert_file(self) -> Path:
        """The broker's TLS certificate."""
        return self.path / "server.crt"

    @property
    def server_key_file(self) -> Path:
        """The broker's TLS key (owner-only)."""
        return self.path / "server.key"

    def init(
        self,
        *,
        port: int = DEFAULT_TLS_PORT,
        host: str = "",
        loopback_port: int | None = None,
        hostnames: list[str] | None = None,
        public_host: str | None = None,
        log_file: bool = True,
    ) -> None:
        """Create CA, server certificate, config, ACL, password file and the server account."""
        # This machine's own names are always in the certificate, so local tools
        # (and a server on this box) can verify the broker too.
        bound = [host] if host not in ("", "0.0.0.0", "::") else []  # noqa: S104 - bind addresses
        names = list(dict.fromkeys([*(hostnames or []), *bound, "localhost", "127.0.0.1"]))
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        (self.path / "data").mkdir(exist_ok=True, mode=0o700)
        state = BrokerState(host=host, port=port, loopback_port=loopback_port,
                            public_host=public_host or names[0], hostnames=names,
                            server_password=new_secret(), admin_password=new_secret())
        write_private(self.state_file, state.model_dump_json(indent=2) + "\n")
        ca = make_ca()
        server_key, server_cert = make_server_certificate(ca, names)
        write_private(self.ca_key_file, ca.key_pem)
        write_private(self.ca_cert_file, ca.cert_pem)
        write_private(self.server_key_file, server_key)
        write_private(self.server_cert_file, server_cert)
        log_dest = f"file {self.log_file}" if log_file else "stderr"
        write_private(self.config_file, _template("mosquitto.conf.template").format(
            dir=self.path, log_dest=log_dest, listeners=_listeners(self.path, state),
            run_user=getpass.getuser(), max_packet=_MAX_PACKET, max_payload=MAX_PAYLOAD_BYTES))
        write_private(self.acl_file, _template("acl.template").format(
            server_user=SERVER_USER, admin_user=ADMIN_USER))
        write_private(self.password_file, "")
        self.set_password(SERVER_USER, state.server_password)
        assert state.admin_password is not None
        self.set_password(ADMIN_USER, state.admin_password)

    def state(self) -> BrokerState:
        """Read the state file; raise :class:`ConfigError` naming it when missing or corrupt."""
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("not a broker directory (run `doorwatch broker init`)",
                              path=self.state_file) from None
        try:
            return BrokerState.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            raise ConfigError(f"corrupt: {first['msg']}", path=self.state_file,
                              field=field) from None

    @property
    def port(self) -> int:
        """The TLS listener port chosen at init."""
        return self.state().port

    @property
    def host(self) -> str:
        """The address to reach the TLS listener at from this machine."""
        host = self.state().host
        return host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104 - a bind address, not one we bind

    @property
    def loopback_port(self) -> int | None:
        """The plaintext loopback listener's port, if there is one."""
        return self.state().loopback_port

    @property
    def server_password(self) -> str:
        """The server account's password."""
        return self.state().server_password

    def check(self) -> None:
        """Check everything Mosquitto will read; raise :class:`ConfigError` naming the bad file."""
        self.state()
        for secret in (self.state_file, self.ca_key_file, self.server_key_file,
                       self.password_file, self.config_file, self.acl_file):
            check_private(secret)
        check_key_pair(self.server_cert_file, self.server_key_file, self.ca_cert_file)
        lines = self.password_file.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            user, _, hashed = line.partition(":")
            if not user or not hashed.startswith("$7$"):
                raise ConfigError(f"line {number} is not 'user:$7$...'", path=self.password_file)

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
        write_private(self.password_file, text)

    def set_password(self, user: str, password: str) -> None:
        """Add or replace ``user`` in the password file (call :meth:`reload` after)."""
        if user not in RESERVED_USERS and not is_valid_device_id(user):
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

    def running_pid(self) -> int | None:
        """The pid of the Mosquitto running on this directory's config (per the pid file)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        # A stale pid file may name an unrelated process now; SIGHUP would kill it.
        if Path("/proc/self").exists():  # elsewhere (no /proc) trust the pid file
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            except OSError:
                return None  # no such process
            if str(self.config_file) not in cmdline:
                return None
        return pid

    def reload(self) -> bool:
        """Ask a running Mosquitto (started by ``broker run``) to re-read its files.

        Mosquitto re-checks every connected client against the new password
        file, so a revoked device is disconnected at once.
        """
        pid = self.running_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
        return True

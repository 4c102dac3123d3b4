"""A broker directory: Mosquitto config, CA, server certificate, password file and ACL.

``doorwatch broker init DIR`` creates one; tests create one in a temporary
folder so the broker they start runs the configuration we ship. Secrets (CA
key, server key, password file, our state file) are written owner-only, and
:meth:`BrokerDir.check` refuses to start Mosquitto when they are not.

Listeners (see docs/security.md, "Listeners"), each with its own password
file (``per_listener_settings true``) and ``use_username_as_clientid``, so no
client can take over another's session by claiming its client id:

* TLS (default 8883) for devices and remote server instances: every account;
* optionally a plaintext listener bound to 127.0.0.1 only, for a server on the
  same machine and the admin tools. Off unless ``loopback_port`` is given. Its
  password file holds the service accounts only (server instances, admin), so
  no device credential works there.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.messages import MAX_PAYLOAD_BYTES
from broker.mosquitto.passwords import hash_password, new_secret
from broker.mosquitto.tls import check_key_pair
from broker.mosquitto.tls_dir import TlsFiles
from broker.topics import is_valid_device_id
from ground.errors import ConfigError
from ground.files import check_private, write_private

__all__ = ["ADMIN_USER", "DEFAULT_TLS_PORT", "RESERVED_PREFIX", "RESERVED_USERS", "SERVER_USER",
           "BrokerDir", "BrokerState", "is_service_account"]

SERVER_USER = "doorwatch-server"
# `doorwatch device rotate` talks to devices as this account, never as the server:
# the client id is the username on every listener, so sharing the server's account
# would take over (and, with a clean session, wipe) the server's session.
ADMIN_USER = "doorwatch-admin"
RESERVED_USERS = (SERVER_USER, ADMIN_USER)
# Further server instances get accounts "doorwatch-server-<name>" (one session each:
# the client id is the username); no device id may start with this prefix.
RESERVED_PREFIX = "doorwatch-"
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def is_service_account(user: str) -> bool:
    """Whether ``user`` is one of our own accounts (server instances, admin), not a device."""
    return user in RESERVED_USERS or (user.startswith(f"{SERVER_USER}-")
                                      and bool(_SERVER_NAME.match(user[len(SERVER_USER) + 1:])))
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
    server_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="Further server instances' accounts (user -> password), see add_server")
    loopback_devices: bool = Field(
        False, description="Benchmarks only: devices may use the loopback listener too")


def _template(name: str) -> str:
    return resources.files("broker.mosquitto").joinpath(name).read_text(encoding="utf-8")


def _authentication(password_file: Path, acl_file: Path) -> str:
    # Per listener (per_listener_settings true): the loopback listener has its own
    # password file. use_username_as_clientid replaces whatever client id a client
    # claims by its username, so nobody can take over a session that is not its own.
    return (
        "allow_anonymous false\n"
        "allow_zero_length_clientid false\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
        "use_username_as_clientid true\n"
    )


def _listeners(broker: BrokerDir, state: BrokerState) -> str:
    directory = broker.path
    bind = f" {state.host}" if state.host else ""
    text = (
        "# Devices (and server instances on other machines) connect here, with TLS only.\n"
        f"listener {state.port}{bind}\n"
        f"certfile {directory}/server.crt\n"
        f"keyfile {directory}/server.key\n"
        f"cafile {directory}/ca.crt\n"
        "tls_version tlsv1.2\n"
        "# Every account. The client id is replaced by the username (= device id), so a\n"
        "# device that claims another's client id cannot kick that device off.\n"
        + _authentication(broker.password_file, broker.acl_file)
    )
    if state.loopback_port is not None:
        local = broker.password_file if state.loopback_devices else broker.local_password_file
        text += (
            "\n# Plaintext, but reachable from this machine only: for a server on the\n"
            "# same box and the admin tools. Its password file holds our service accounts\n"
            "# only: a device password is refused here (it would otherwise let a local\n"
            "# process in without TLS). Client ids are pinned to usernames here too, so\n"
            "# the server's session cannot be taken over.\n"
            + ("# (Benchmark set-up: devices allowed here too.)\n"
               if state.loopback_devices else "")
            + f"listener {state.loopback_port} 127.0.0.1\n"
            + _authentication(local, broker.acl_file)
        )
    return text


def _server_acl(users: list[str]) -> str:
    block = _template("acl_server.template")
    return "\n".join(block.format(server_user=user) for user in users)


@dataclass(frozen=True)
class BrokerDir(TlsFiles):
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
    def local_password_file(self) -> Path:
        """The loopback listener's password file: service accounts only, no device."""
        return self.path / "passwd.local"

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

    def init(
        self,
        *,
        port: int = DEFAULT_TLS_PORT,
        host: str = "",
        loopback_port: int | None = None,
        hostnames: list[str] | None = None,
        public_host: str | None = None,
        log_file: bool = True,
        loopback_devices: bool = False,
    ) -> None:
        """Create CA, server certificate, config, ACL, password files and the server account.

        ``loopback_devices`` lets device accounts use the loopback listener too: for
        the benchmarks only (they measure MQTT and storage, not TLS); never in
        production, where a device credential must not work without TLS.
        """
        # This machine's own names are always in the certificate, so local tools
        # (and a server on this box) can verify the broker too.
        bound = [host] if host not in ("", "0.0.0.0", "::") else []  # noqa: S104 - bind addresses
        names = list(dict.fromkeys([*(hostnames or []), *bound, "localhost", "127.0.0.1"]))
        self.make_private_dir()
        (self.path / "data").mkdir(exist_ok=True, mode=0o700)
        state = BrokerState(host=host, port=port, loopback_port=loopback_port,
                            public_host=public_host or names[0], hostnames=names,
                            server_password=new_secret(), admin_password=new_secret(),
                            loopback_devices=loopback_devices)
        write_private(self.state_file, state.model_dump_json(indent=2) + "\n")
        self.write_certificates(names)
        write_private(self.password_file, "")
        self._write_config(state, log_file=log_file)
        self.set_password(SERVER_USER, state.server_password)
        assert state.admin_password is not None
        self.set_password(ADMIN_USER, state.admin_password)

    def _write_config(self, state: BrokerState, *, log_file: bool | None = None) -> None:
        """(Re)write mosquitto.conf, the ACL and the loopback password file from ``state``."""
        if log_file is None:  # keep what init chose
            log_file = (not self.config_file.exists()
                        or f"log_dest file {self.log_file}" in self.config_file.read_text())
        log_dest = f"file {self.log_file}" if log_file else "stderr"
        write_private(self.config_file, _template("mosquitto.conf.template").format(
            dir=self.path, log_dest=log_dest, listeners=_listeners(self, state),
            run_user=getpass.getuser(), max_packet=_MAX_PACKET, max_payload=MAX_PAYLOAD_BYTES))
        write_private(self.acl_file, _template("acl.template").format(
            server_blocks=_server_acl([SERVER_USER, *sorted(state.server_accounts)]),
            admin_user=ADMIN_USER))
        self._save_entries(self._entries())

    def upgrade(self) -> bool:
        """Rewrite the generated files of a directory made by an older ``init``.

        Called by ``broker run``: a broker directory from before the loopback
        listener had its own password file gets it (and the per-listener config)
        here, and one from before ``set_tcp_nodelay`` gets that. Returns whether
        anything was rewritten.
        """
        state = self.state()
        config = self.config_file.read_text()
        if (self.local_password_file.exists() and "per_listener_settings true" in config
                and "set_tcp_nodelay true" in config):
            return False
        self._write_config(state)
        return True

    def add_server(self, name: str) -> tuple[str, str]:
        """Create the account of a further server instance; return (user, password).

        Each server instance needs an account of its own: the client id is the
        username on every listener, so two instances on one account would keep
        taking each other's session. Call :meth:`reload` after.
        """
        if not _SERVER_NAME.match(name):
            raise ConfigError(f"invalid server name {name!r}: use 1-32 of a-z, 0-9 and '-'",
                              path=self.state_file)
        state = self.state()
        user = f"{SERVER_USER}-{name}"
        if user in state.server_accounts:
            raise ConfigError(f"server account {user} exists already", path=self.state_file)
        password = new_secret()
        state.server_accounts[user] = password
        write_private(self.state_file, state.model_dump_json(indent=2) + "\n")
        self.set_password(user, password)
        self._write_config(state)
        return user, password

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
                       self.password_file, self.local_password_file, self.config_file,
                       self.acl_file):
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
        """Write the password file and the loopback listener's (service accounts only)."""
        text = "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items()))
        write_private(self.password_file, text)
        local = "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items())
                        if is_service_account(user))
        write_private(self.local_password_file, local)

    def set_password(self, user: str, password: str) -> None:
        """Add or replace ``user`` in the password file (call :meth:`reload` after)."""
        if not is_service_account(user) and (
                not is_valid_device_id(user) or user.startswith(RESERVED_PREFIX)):
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

"""A RabbitMQ broker directory: what ``broker init --profile rabbitmq`` makes and
``device provision|revoke|rotate`` change.

Beside Mosquitto's :class:`~broker.mosquitto.directory.BrokerDir`, with the same faces the
provisioning code uses (``state``, ``users``, ``set_password``, ``remove_user``,
``reload``, ``check``, ``ca_cert_file``, ``host``), so ``server/domain/provisioning.py``
works on either. The folder holds:

* ``ca.crt``/``ca.key``, ``server.crt``/``server.key``: the nodes' TLS certificate
  (one certificate naming every node), as for Mosquitto;
* ``rabbitmq-<node>.conf``: each node's configuration (MQTT over TLS for devices,
  AMQP for the servers, quorum session queues, no guest account);
* ``definitions.json``: the server and admin accounts and the ingest queue, to
  import once with ``rabbitmqctl import_definitions`` before devices connect;
* ``doorwatch-rabbitmq.json``: our state (owner-only: it holds passwords).

Accounts change on the running cluster through ``rabbitmqctl`` (run where it can
reach a node with the cluster's Erlang cookie: on a broker node, as root), which
takes effect at once on every node. RabbitMQ does not re-check a connected
client's password, so :meth:`RabbitBrokerDir.reload` closes the connections of
the users changed since the last reload (a revoked device is cut off; a rotated
one reconnects with its new password).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.mosquitto.directory import RESERVED_USERS, SERVER_USER, BrokerState
from broker.mosquitto.passwords import new_secret
from broker.mosquitto.tls import check_key_pair
from broker.mosquitto.tls_dir import TlsFiles
from broker.rabbitmq.definitions import definitions, device_definitions
from broker.rabbitmq.local import RABBIT_BIN, node_config
from broker.topics import is_valid_device_id
from ground.errors import ConfigError, DoorwatchError
from ground.files import check_private, write_private

__all__ = ["STATE_FILE", "RabbitBrokerDir", "RabbitNode", "RabbitState", "is_rabbitmq_dir"]

STATE_FILE = "doorwatch-rabbitmq.json"


class RabbitNode(BaseModel):
    """One node of the cluster as devices, servers and rabbitmqctl reach it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Erlang node name, e.g. rabbit@broker-1")
    host: str = Field(description="Address devices and servers use")
    mqtt_port: int = Field(8883, ge=1, le=65535, description="MQTT over TLS (devices)")
    amqp_port: int = Field(5672, ge=1, le=65535, description="AMQP (server instances)")
    mqtt_plain_port: int | None = Field(
        None, ge=1, le=65535, description="Plaintext MQTT on 127.0.0.1 (admin tools on a node)")


class RabbitState(BaseModel):
    """What ``broker init --profile rabbitmq`` decided."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field("rabbitmq", description="Always rabbitmq")
    nodes: list[RabbitNode] = Field(min_length=1, description="Every node of the cluster")
    hostnames: list[str] = Field(description="Names in the nodes' certificate")
    server_password: str = Field(description="The doorwatch-server account's password")
    admin_password: str = Field(description="The doorwatch-admin account's password")
    ctl_env: dict[str, str] = Field(
        default_factory=dict, description="Environment for rabbitmqctl (HOME with the "
        "cluster's Erlang cookie, ERL_EPMD_PORT) when not the system's defaults")


def is_rabbitmq_dir(path: Path) -> bool:
    """True if ``path`` was made by ``broker init --profile rabbitmq``."""
    return (path / STATE_FILE).exists()


@dataclass
class RabbitBrokerDir(TlsFiles):
    """The files of one RabbitMQ-profile installation, and its accounts on the cluster."""

    path: Path
    _changed: set[str] = field(default_factory=set)

    @property
    def state_file(self) -> Path:
        """Our state (owner-only)."""
        return self.path / STATE_FILE

    @property
    def definitions_file(self) -> Path:
        """Accounts and the ingest queue, to import once (owner-only: password hashes)."""
        return self.path / "definitions.json"

    def node_config_file(self, node: RabbitNode) -> Path:
        """The rabbitmq.conf for ``node``."""
        return self.path / f"rabbitmq-{node.name.replace('@', '-')}.conf"

    def init(self, nodes: list[RabbitNode], *, hostnames: list[str] | None = None,
             ctl_env: dict[str, str] | None = None) -> None:
        """Create certificates, node configurations, definitions and the state file."""
        names = list(dict.fromkeys([*(hostnames or []), *(n.host for n in nodes), "localhost",
                                    "127.0.0.1"]))
        self.make_private_dir()
        state = RabbitState(nodes=nodes, hostnames=names, server_password=new_secret(),
                            admin_password=new_secret(), ctl_env=ctl_env or {})
        write_private(self.state_file, state.model_dump_json(indent=2) + "\n")
        self.write_certificates(names)
        for node in nodes:
            plain = (f"127.0.0.1:{node.mqtt_plain_port}" if node.mqtt_plain_port
                     else "127.0.0.1:1883")
            write_private(self.node_config_file(node), node_config(
                amqp=f"{node.host}:{node.amqp_port}", mqtt=plain,
                admin_password=state.admin_password, mqtt_tls=f"{node.host}:{node.mqtt_port}",
                tls_dir=self.path))
        write_private(self.definitions_file, json.dumps(definitions(
            server_password=state.server_password, admin_password=state.admin_password),
            indent=2))

    def rabbit_state(self) -> RabbitState:
        """Read the state file; raise :class:`ConfigError` naming it when missing or corrupt."""
        try:
            return RabbitState.model_validate_json(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("not a RabbitMQ broker directory (run `doorwatch broker init "
                              "--profile rabbitmq`)", path=self.state_file) from None
        except ValidationError as exc:
            raise ConfigError(f"corrupt: {exc.errors()[0]['msg']}", path=self.state_file) from None

    def state(self) -> BrokerState:
        """The Mosquitto-shaped view the provisioning and admin tools read (first node)."""
        rs = self.rabbit_state()
        first = rs.nodes[0]
        return BrokerState(host=first.host, port=first.mqtt_port,
                           loopback_port=first.mqtt_plain_port, public_host=first.host,
                           hostnames=rs.hostnames, server_password=rs.server_password,
                           admin_password=rs.admin_password)

    @property
    def host(self) -> str:
        """The first node's address."""
        return self.rabbit_state().nodes[0].host

    def device_brokers(self) -> list[str]:
        """The other nodes as ``host:port``, for the device's ``mqtt.brokers``."""
        return [f"{n.host}:{n.mqtt_port}" for n in self.rabbit_state().nodes[1:]]

    def check(self) -> None:
        """Check our secrets are owner-only and the certificate matches its key."""
        self.rabbit_state()
        for secret in (self.state_file, self.ca_key_file, self.server_key_file,
                       self.definitions_file):
            check_private(secret)
        check_key_pair(self.server_cert_file, self.server_key_file, self.ca_cert_file)

    # -- accounts on the running cluster -----------------------------------------------

    def ctl(self, *args: str, input_text: str | None = None) -> str:
        """Run rabbitmqctl against the first node that answers; raise if none does."""
        rs = self.rabbit_state()
        env = {**os.environ, **rs.ctl_env}
        errors = []
        for node in rs.nodes:
            try:
                out = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
                                     env=env, capture_output=True, text=True, timeout=120,
                                     check=False, input=input_text)
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{node.name}: {exc}")
                continue
            if out.returncode == 0:
                return out.stdout
            errors.append(f"{node.name}: {(out.stderr or out.stdout).strip()[-500:]}")
            if "nodedown" not in out.stderr and "unable to perform" not in out.stderr.lower():
                break  # the node answered and refused: another node would too
        raise DoorwatchError(f"rabbitmqctl {args[0]} failed: " + " | ".join(errors))

    def users(self) -> list[str]:
        """Every account on the cluster."""
        out = self.ctl("list_users", "--quiet", "--formatter", "json")
        return sorted(str(user["user"]) for user in json.loads(out))

    def set_password(self, user: str, password: str) -> None:
        """Create or update a device account with its permissions (takes effect at once)."""
        if user in RESERVED_USERS:
            raise ConfigError(f"{user} is one of the broker's own accounts", path=self.path)
        if not is_valid_device_id(user):
            raise ConfigError(f"invalid device id {user!r}", path=self.path)
        path = self.path / f".import-{user}.json"
        write_private(path, json.dumps(device_definitions(user, password)))
        try:
            self.ctl("import_definitions", str(path))
        finally:
            path.unlink(missing_ok=True)
        self._changed.add(user)

    def remove_user(self, user: str) -> bool:
        """Delete a device account; return whether it existed."""
        if user not in self.users():
            return False
        self.ctl("delete_user", user)
        self._changed.add(user)
        return True

    def reload(self) -> bool:
        """Close the connections of the accounts changed since the last reload.

        ``close_all_user_connections`` reaches AMQP connections only; RabbitMQ 3.10
        has no command that closes an MQTT connection, so those (client id = device
        id, as the agent connects) are ended through the MQTT plugin's cluster-wide
        client registry. The device reconnects (with its new password after a
        rotation; a revoked one is refused).
        """
        if not self._changed:
            return True
        ids = ",".join(f'<<"{user}">>' for user in sorted(self._changed))  # valid ids only
        self.ctl("eval", f"Ids = [{ids}], [exit(Pid, kill) || {{Id, Pid}} <- "
                 "rabbit_mqtt_collector:list(), lists:member(iolist_to_binary(Id), Ids)], ok.")
        for user in sorted(self._changed):
            self.ctl("close_all_user_connections", user, "credentials changed by doorwatch")
        self._changed.clear()
        return True

    @property
    def server_user(self) -> str:
        """The server's account."""
        return SERVER_USER

"""The TLS half of a broker directory, shared by the Mosquitto and RabbitMQ profiles.

Both :class:`broker.mosquitto.directory.BrokerDir` and
:class:`broker.rabbitmq.broker_dir.RabbitBrokerDir` keep the same four files (our CA
and the broker's certificate, keys owner-only) in an owner-only folder; they differ
only in what else they write there.
"""

from __future__ import annotations

import os
from pathlib import Path

from broker.mosquitto.tls import make_ca, make_server_certificate
from ground.files import write_private

__all__ = ["TlsFiles"]


class TlsFiles:
    """Paths of a broker directory's CA and server certificate, and how to make them.

    A mixin: the class using it provides ``path`` (the directory).
    """

    path: Path

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

    def make_private_dir(self) -> None:
        """Create the directory owner-only (and tighten it if it already existed)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    def write_certificates(self, names: list[str]) -> None:
        """Make a new CA and a server certificate naming ``names``; write all four files."""
        ca = make_ca()
        server_key, server_cert = make_server_certificate(ca, names)
        write_private(self.ca_key_file, ca.key_pem)
        write_private(self.ca_cert_file, ca.cert_pem)
        write_private(self.server_key_file, server_key)
        write_private(self.server_cert_file, server_cert)

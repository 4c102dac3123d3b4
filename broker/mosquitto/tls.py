"""The broker's private CA and server certificate, made with ``cryptography``.

``broker init`` makes a CA (kept in the broker directory, owner-only) and a
server certificate signed by it whose subject alternative names are the host
names and addresses devices use to reach the broker. Devices get only the CA
certificate (in their provisioning bundle) and verify the broker against it,
so a device cannot be pointed at an impostor broker, and a DNS name that is
not in the certificate fails the handshake.

Keys are ECDSA P-256: small enough for a Pi's handshake, supported by
Mosquitto's OpenSSL and by Python's ``ssl``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ground.errors import ConfigError

__all__ = [
    "CertificateAuthority",
    "check_key_pair",
    "load_certificate",
    "load_private_key",
    "make_ca",
    "make_server_certificate",
]

_CA_DAYS = 3650
_SERVER_DAYS = 825  # the longest server certificate lifetime clients commonly accept


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and certificate, PEM-encoded."""

    key_pem: bytes
    cert_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    common_name: str = "doorwatch broker CA", *, days: int = _CA_DAYS
) -> CertificateAuthority:
    """Create a self-signed CA that may sign server certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _san(hostnames: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_server_certificate(
    ca: CertificateAuthority, hostnames: list[str], *, days: int = _SERVER_DAYS
) -> tuple[bytes, bytes]:
    """Create the broker's key and certificate for ``hostnames``; return (key PEM, cert PEM)."""
    if not hostnames:
        raise ValueError("the server certificate needs at least one host name or address")
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hostnames), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(path: Path, *, data: bytes | None = None) -> x509.Certificate:
    """Read a PEM certificate; raise :class:`ConfigError` naming ``path`` if it is not one."""
    try:
        raw = data if data is not None else path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("certificate file is missing", path=path) from None
    try:
        cert = x509.load_pem_x509_certificate(raw)
    except ValueError as exc:
        raise ConfigError(f"not a PEM certificate ({exc})", path=path) from None
    if cert.not_valid_after_utc < _now():
        raise ConfigError(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}", path=path)
    return cert


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read an unencrypted PEM EC private key; raise :class:`ConfigError` naming ``path``."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError("key file is missing", path=path) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not an unencrypted PEM private key ({exc})", path=path) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("not an EC private key", path=path)
    return key


def check_key_pair(cert_path: Path, key_path: Path, ca_path: Path) -> None:
    """Check that the server certificate matches its key and was signed by the CA."""
    cert = load_certificate(cert_path)
    key = load_private_key(key_path)
    ca = load_certificate(ca_path)
    if cert.public_key() != key.public_key():
        raise ConfigError(f"does not belong to the certificate {cert_path}", path=key_path)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not signed by the CA in {ca_path}: {exc}", path=cert_path) from None
    except Exception as exc:  # InvalidSignature has no common base with ValueError
        raise ConfigError(f"signature does not verify against {ca_path}: {exc}",
                          path=cert_path) from None

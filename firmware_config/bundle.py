"""The provisioning bundle: one file that turns a blank Pi into a commissioned device.

``doorwatch device provision`` writes it on the server side; the installer
copies it to the Pi and runs ``doorwatch agent install-bundle FILE``. It is a
JSON document holding the device configuration (TOML text without secrets),
the broker's CA certificate and the device's broker password, plus a SHA-256
over all of that so a truncated or edited copy is refused by name instead of
half-installed. The file holds a secret: it is written owner-only, and the
installer should delete it after installing.

The agent side parses it with the standard library only (``ssl`` checks the
CA certificate), so a Pi needs no extra packages.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from broker.topics import DEVICE_ID_PATTERN
from firmware_config.device_config import DeviceConfig
from ground.errors import ConfigError
from ground.files import write_private

__all__ = ["BUNDLE_FORMAT", "BundleError", "ProvisioningBundle", "read_bundle", "write_bundle"]

BUNDLE_FORMAT: Final = "doorwatch-provisioning-bundle"
_MAX_BUNDLE_BYTES = 256 * 1024


class BundleError(ConfigError):
    """A provisioning bundle is missing, corrupt or inconsistent; names the file and field."""


class ProvisioningBundle(BaseModel):
    """Everything a device needs to join: configuration, trust anchor, credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["doorwatch-provisioning-bundle"] = BUNDLE_FORMAT
    version: Literal[1] = 1
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN, description="The device's id")]
    created_at: AwareDatetime = Field(description="When the bundle was made")
    device_toml: str = Field(
        max_length=64 * 1024,
        description="Device configuration (TOML, no secrets); mqtt.ca_file is set at install",
    )
    ca_pem: str = Field(max_length=64 * 1024, description="The broker's CA certificate (PEM)")
    password: str = Field(min_length=16, max_length=256, repr=False,
                          description="The device's broker password")
    sha256: str = Field("", description="SHA-256 of the other fields (canonical JSON)")

    def digest(self) -> str:
        """SHA-256 over every field except ``sha256`` itself."""
        body = self.model_dump(mode="json", exclude={"sha256"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def sealed(self) -> ProvisioningBundle:
        """A copy with ``sha256`` filled in."""
        return self.model_copy(update={"sha256": self.digest()})

    def device_settings(self) -> dict[str, Any]:
        """The device configuration as a dict (already validated by :func:`read_bundle`)."""
        return tomllib.loads(self.device_toml)


def write_bundle(path: Path, bundle: ProvisioningBundle) -> None:
    """Write ``bundle`` (sealed) to ``path``, readable by the owner only."""
    write_private(path, bundle.sealed().model_dump_json(indent=2) + "\n")


def _check_contents(path: Path, bundle: ProvisioningBundle) -> None:
    if bundle.sha256 != bundle.digest():
        raise BundleError("checksum mismatch: the file was truncated or edited",
                          path=path, field="sha256")
    try:
        ssl.create_default_context(cadata=bundle.ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise BundleError(f"not a PEM CA certificate ({exc})", path=path, field="ca_pem") from None
    try:
        settings = tomllib.loads(bundle.device_toml)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"not valid TOML: {exc}", path=path, field="device_toml") from None
    if settings.get("device_id") != bundle.device_id:
        raise BundleError(
            f"device_id {settings.get('device_id')!r} differs from the bundle's "
            f"{bundle.device_id!r}", path=path, field="device_toml.device_id")
    try:
        DeviceConfig.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "device_toml." + ".".join(str(p) for p in first["loc"])
        raise BundleError(first["msg"], path=path, field=field) from None


def read_bundle(path: Path) -> ProvisioningBundle:
    """Read and verify a bundle; raise :class:`BundleError` naming the file and what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BundleError("file not found", path=path) from None
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror}", path=path) from None
    if len(raw) > _MAX_BUNDLE_BYTES:
        raise BundleError(f"{len(raw)} bytes is too large for a bundle", path=path)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"not a bundle (not JSON: {exc})", path=path) from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a bundle (format is not {BUNDLE_FORMAT!r})", path=path,
                          field="format")
    try:
        bundle = ProvisioningBundle.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise BundleError(first["msg"], path=path, field=field) from None
    _check_contents(path, bundle)
    return bundle

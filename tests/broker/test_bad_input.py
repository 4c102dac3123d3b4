"""Bad input on the security path: every failure names the file and what is wrong."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from agent.credentials import CredentialStore, install_bundle
from broker.mosquitto.directory import BrokerDir
from broker.mosquitto.runner import BrokerStartError, find_mosquitto, start_mosquitto
from broker.mosquitto.tls import make_ca
from broker.topics import is_valid_device_id
from firmware_config.bundle import BundleError, ProvisioningBundle, read_bundle, write_bundle
from ground.errors import ConfigError
from ground.ports import free_port
from tests.requirements import need

CA_PEM = make_ca().cert_pem.decode()


def make_bundle(tmp_path: Path, **changes: object) -> Path:
    """A valid bundle file (with ``changes`` applied before sealing)."""
    from broker.messages import utc_now

    fields: dict[str, object] = {
        "device_id": "door-a", "created_at": utc_now(), "ca_pem": CA_PEM,
        "password": "p" * 32,
        "device_toml": 'device_id = "door-a"\n[mqtt]\nhost = "broker.example"\nport = 8883\n',
    }
    fields.update(changes)
    path = tmp_path / "door-a.bundle.json"
    write_bundle(path, ProvisioningBundle.model_validate(fields))
    return path


def edit(path: Path, **changes: object) -> None:
    """Change fields of a written bundle without resealing it (what corruption looks like)."""
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_good_bundle_installs(tmp_path: Path) -> None:
    done = install_bundle(make_bundle(tmp_path), tmp_path / "etc", data_dir=tmp_path / "data")
    assert CredentialStore(done.credentials_file).current == "p" * 32
    assert done.ca_file.read_text() == CA_PEM


@pytest.mark.parametrize(("damage", "field", "message"), [
    ({"password": "q" * 32}, "sha256", "checksum mismatch"),
    ({"device_id": "door-b"}, "sha256", "checksum mismatch"),
    ({"format": "something-else"}, "format", "not a bundle"),
    ({"version": 2}, "version", "Input should be 1"),
    ({"surprise": 1}, "surprise", "Extra inputs"),
])
def test_a_damaged_bundle_is_refused_by_name(
    tmp_path: Path, damage: dict[str, object], field: str, message: str
) -> None:
    path = make_bundle(tmp_path)
    edit(path, **damage)
    with pytest.raises(BundleError, match=message) as caught:
        read_bundle(path)
    assert caught.value.path == path
    assert caught.value.field == field


def test_a_truncated_bundle_is_refused(tmp_path: Path) -> None:
    path = make_bundle(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BundleError, match="not JSON") as caught:
        read_bundle(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("changes", "field"), [
    ({"ca_pem": "-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n"}, "ca_pem"),
    ({"device_toml": "device_id = \n"}, "device_toml"),
    ({"device_toml": 'device_id = "door-z"\n'}, "device_toml.device_id"),
    ({"device_toml": 'device_id = "door-a"\n[mqtt]\nprot = 8883\n'}, "device_toml.mqtt.prot"),
])
def test_inconsistent_bundle_contents_are_refused(
    tmp_path: Path, changes: dict[str, object], field: str
) -> None:
    path = make_bundle(tmp_path, **changes)
    with pytest.raises(BundleError) as caught:
        read_bundle(path)
    assert caught.value.field == field


def test_a_refused_bundle_installs_nothing(tmp_path: Path) -> None:
    path = make_bundle(tmp_path)
    edit(path, password="q" * 32)
    with pytest.raises(BundleError):
        install_bundle(path, tmp_path / "etc", data_dir=tmp_path / "data")
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path / "data").exists()


def test_agent_toml_appears_last_with_the_password_already_the_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doorwatch-agent.path starts the agent when agent.toml appears (issue 15 item 3).

    By then the CA and the password file must be in place, and the password file
    the data folder owner's (the package's `doorwatch` user) when root installs it.
    """
    import os

    data = tmp_path / "data"
    data.mkdir()
    owner = (65534, 65534) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    if os.geteuid() == 0:
        os.chown(data, *owner)  # as postinst leaves /var/lib/doorwatch: the service's
    seen: list[tuple[str, bool, bool, int]] = []
    real_replace = os.replace

    def watch(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        if Path(dst).name == "agent.toml":
            credentials = data / "credentials.json"
            seen.append((Path(dst).name, credentials.exists(),
                         (tmp_path / "etc" / "ca.crt").exists(),
                         credentials.stat().st_uid if credentials.exists() else -1))

    monkeypatch.setattr(os, "replace", watch)
    done = install_bundle(make_bundle(tmp_path), tmp_path / "etc", data_dir=data)
    assert seen == [("agent.toml", True, True, owner[0])]
    assert (done.credentials_file.stat().st_uid, done.credentials_file.stat().st_gid) == owner
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["agent.toml", "ca.crt"]


def test_credentials_readable_by_others_are_refused(tmp_path: Path) -> None:
    done = install_bundle(make_bundle(tmp_path), tmp_path / "etc", data_dir=tmp_path / "data")
    done.credentials_file.chmod(0o644)
    with pytest.raises(ConfigError, match="unsafe permissions 0644") as caught:
        CredentialStore(done.credentials_file)
    assert caught.value.path == done.credentials_file


def test_device_ids_cannot_widen_acl_patterns() -> None:
    for bad in ("door/+", "door#", "+", "door-a/../door-b", "Door-A", "a"):
        assert not is_valid_device_id(bad)


@pytest.fixture
def broker_dir(tmp_path: Path) -> BrokerDir:
    """A freshly initialised broker directory (not started)."""
    need("mosquitto", find_mosquitto() is not None,
         "mosquitto is not installed (Debian: apt-get install mosquitto)")
    broker = BrokerDir(tmp_path / "broker")
    broker.init(port=free_port(), host="127.0.0.1")
    return broker


@pytest.mark.parametrize("name", ["server.key", "ca.key", "passwd", "doorwatch-broker.json"])
def test_secret_files_with_unsafe_permissions_stop_the_start(
    broker_dir: BrokerDir, name: str
) -> None:
    (broker_dir.path / name).chmod(0o640)
    with pytest.raises(ConfigError, match="unsafe permissions 0640") as caught:
        start_mosquitto(broker_dir)
    assert caught.value.path == broker_dir.path / name


def test_a_corrupt_certificate_stops_the_start(broker_dir: BrokerDir) -> None:
    broker_dir.server_cert_file.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(ConfigError, match="not a PEM certificate") as caught:
        start_mosquitto(broker_dir)
    assert caught.value.path == broker_dir.server_cert_file


def test_a_key_of_another_certificate_stops_the_start(
    broker_dir: BrokerDir, tmp_path: Path
) -> None:
    other = BrokerDir(tmp_path / "other")
    other.init(port=free_port())
    broker_dir.server_key_file.write_bytes(other.server_key_file.read_bytes())
    with pytest.raises(ConfigError, match="does not belong") as caught:
        start_mosquitto(broker_dir)
    assert caught.value.path == broker_dir.server_key_file


def test_a_corrupt_state_file_is_named(broker_dir: BrokerDir) -> None:
    broker_dir.state_file.write_text('{"port": "x"}')
    with pytest.raises(ConfigError, match="corrupt") as caught:
        start_mosquitto(broker_dir)
    assert caught.value.path == broker_dir.state_file


@pytest.mark.broker
def test_mosquitto_that_will_not_start_reports_config_and_log(broker_dir: BrokerDir) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", broker_dir.port))
        squatter.listen()
        with pytest.raises(BrokerStartError) as caught:
            start_mosquitto(broker_dir, timeout=10)
    assert caught.value.config == broker_dir.config_file
    assert str(broker_dir.config_file) in str(caught.value)
    assert "Address already in use" in caught.value.log

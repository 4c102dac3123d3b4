"""Property-based fuzzing of the configuration boundaries.

Server config (TOML), device config (TOML plus the remote override JSON),
provisioning bundles (JSON) and scene files (TOML): whatever the bytes, the
loader returns a valid model or raises ConfigError naming the file (``path``)
and, when a value is wrong, the field (``field``); never a raw
ValidationError, KeyError, TypeError or UnicodeDecodeError.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tomli_w
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from broker.mosquitto.tls import make_ca
from firmware_config.bundle import BundleError, ProvisioningBundle, read_bundle, write_bundle
from firmware_config.device_config import OVERRIDE_FILE, load_device_config
from firmware_config.scene import load_scene
from ground.errors import ConfigError
from server.config import load_server_settings
from tests.fuzz.strategies import FUZZ, json_values, mutated

T = TypeVar("T")

# TOML can hold these (no nulls); tomli_w writes them.
toml_scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
                | st.floats(allow_nan=False) | st.datetimes(timezones=st.just(UTC)))
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
raw_bytes = st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | st.sampled_from([
    b"", b"\xff\xfe", "[mqtt]\nport = 1".encode("utf-16"), b"a = [" * 2000, b"x = 1\nx = 2",
    b"[mqtt]\nport = 99999", b"mqtt = 3", b"[[mqtt]]\nport = 1",
])


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A scratch folder shared by the examples of a module (hypothesis re-runs test bodies)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DOORWATCH_")}
    for key in saved:  # environment overrides would change what the files say
        del os.environ[key]
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)
    os.environ.update(saved)


def _outcome(call: Callable[[], T]) -> T | ConfigError:
    """What ``call`` returns, or the ConfigError it raises (anything else propagates)."""
    try:
        return call()
    except ConfigError as exc:
        return exc


def _assert_names(error: ConfigError, path: Path, fields: set[str] | None = None) -> None:
    assert error.path == path, f"error does not name the file: {error}"
    assert str(path) in str(error)
    if fields is not None:
        assert error.field, f"error does not name the field: {error}"
        assert error.field.split(".")[0] in fields, (error.field, fields)


def _with(base: dict[str, Any], section: str | None, key: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(base))
    target = data.setdefault(section, {}) if section else data
    target[key] = value
    return data


# --- server configuration ---------------------------------------------------------------

_SERVER_KEYS = {"database_url", "data_dir", "instance", "mqtt", "ingest", "rules", "notify",
                "http", "escalation", "schedule", "devices", "retention"}


@FUZZ
@given(raw=raw_bytes)
@example(raw=b"\xff\xfe\x00")
def test_server_config_from_any_bytes(folder: Path, raw: bytes) -> None:
    path = folder / "server.toml"
    path.write_bytes(raw)
    outcome = _outcome(lambda: load_server_settings(path))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path)


@FUZZ
@given(section=st.sampled_from([None, "mqtt", "ingest", "rules", "notify", "http", "escalation",
                                "schedule", "devices", "retention"]),
       key=st.sampled_from(["port", "host", "batch_max", "fold_window_s", "retry_delays_s",
                            "enabled", "days", "database_url", "instance", "typo"]),
       value=toml_values)
def test_server_config_with_any_value_anywhere(
    folder: Path, section: str | None, key: str, value: Any
) -> None:
    path = folder / "server.toml"
    base = {"database_url": "sqlite:///x.db", "instance": "fuzz", "mqtt": {"port": 1883}}
    path.write_text(tomli_w.dumps(_with(base, section, key, value)))
    outcome = _outcome(lambda: load_server_settings(path))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path, _SERVER_KEYS | {key})


def test_server_config_that_is_a_directory_names_it(folder: Path) -> None:
    """Found by fuzzing: a directory or unreadable file escaped as a raw OSError."""
    path = folder / "a-directory.toml"
    path.mkdir(exist_ok=True)
    with pytest.raises(ConfigError) as caught:
        load_server_settings(path)
    assert caught.value.path == path


# --- device configuration ---------------------------------------------------------------

_DEVICE_KEYS = {"device_id", "data_dir", "firmware_version", "heartbeat_interval_s",
                "armed_default", "language", "pin_factory", "mqtt", "door", "camera",
                "evidence", "outbox", "tamper", "commission"}


@FUZZ
@given(raw=raw_bytes)
def test_device_config_from_any_bytes(folder: Path, raw: bytes) -> None:
    path = folder / "agent.toml"
    path.write_bytes(raw)
    outcome = _outcome(lambda: load_device_config(path, use_override=False))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path)


@FUZZ
@given(section=st.sampled_from([None, "mqtt", "door", "camera", "evidence", "outbox", "tamper",
                                "commission"]),
       key=st.sampled_from(["device_id", "port", "gpio_pin", "quiet_s", "backend", "scene",
                            "heartbeat_interval_s", "language", "fps", "typo"]),
       value=toml_values)
def test_device_config_with_any_value_anywhere(
    folder: Path, section: str | None, key: str, value: Any
) -> None:
    path = folder / "agent.toml"
    base = {"device_id": "door-1", "data_dir": str(folder / "data")}
    path.write_text(tomli_w.dumps(_with(base, section, key, value)))
    outcome = _outcome(lambda: load_device_config(path, use_override=False))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path, _DEVICE_KEYS | {key})


@FUZZ
@given(override=json_values | mutated({"mqtt": {"port": 1883}, "door": {"quiet_s": 5}}).map(
    lambda d: d) | st.binary(max_size=50))
def test_a_bad_remote_override_names_the_override_file(folder: Path, override: Any) -> None:
    data_dir = folder / "override-data"
    data_dir.mkdir(exist_ok=True)
    path = folder / "agent-ov.toml"
    path.write_text(tomli_w.dumps({"device_id": "door-1", "data_dir": str(data_dir)}))
    override_path = data_dir / OVERRIDE_FILE
    override_path.write_bytes(override if isinstance(override, bytes)
                              else json.dumps(override).encode())
    outcome = _outcome(lambda: load_device_config(path))
    if isinstance(outcome, ConfigError):
        # The TOML file is fine: whatever is wrong is in the override, so name that file.
        _assert_names(outcome, override_path)


# --- provisioning bundles ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed_bundle() -> dict[str, Any]:
    """A valid, sealed bundle as JSON."""
    bundle = ProvisioningBundle(
        device_id="door-1", created_at=datetime.now(UTC),
        device_toml=tomli_w.dumps({"device_id": "door-1"}),
        ca_pem=make_ca().cert_pem.decode(), password="p" * 24).sealed()
    return json.loads(bundle.model_dump_json())


_BUNDLE_KEYS = {"format", "version", "device_id", "created_at", "device_toml", "ca_pem",
                "password", "sha256"}


@FUZZ
@given(data=st.data())
def test_bundles_corrupted_any_way_are_named_errors(
    folder: Path, sealed_bundle: dict[str, Any], data: st.DataObject
) -> None:
    path = folder / "door-1.bundle"
    how = data.draw(st.sampled_from(["mutate", "mutate-resealed", "truncate", "bytes", "toml"]))
    known = set(_BUNDLE_KEYS)
    if how == "bytes":
        path.write_bytes(data.draw(raw_bytes))
    elif how == "truncate":
        text = json.dumps(sealed_bundle).encode()
        path.write_bytes(text[: data.draw(st.integers(0, len(text) - 1))])
    elif how == "toml":
        # A well-sealed bundle whose device configuration is wrong in some field.
        value = data.draw(toml_values)
        key = data.draw(st.sampled_from(["device_id", "heartbeat_interval_s", "mqtt", "typo"]))
        toml = tomli_w.dumps({"device_id": "door-1", key: value})
        fields = {k: v for k, v in sealed_bundle.items() if k != "sha256"}
        bundle = ProvisioningBundle.model_validate({**fields, "device_toml": toml})
        write_bundle(path, bundle)
    else:
        broken = data.draw(mutated({k: v for k, v in sealed_bundle.items() if k != "sha256"}
                                   if how == "mutate-resealed" else sealed_bundle))
        if how == "mutate-resealed":
            try:  # reseal what still validates, so the content checks behind the seal run
                resealed = ProvisioningBundle.model_validate(broken).sealed()
                broken = json.loads(resealed.model_dump_json())
            except ValidationError:
                pass
        known |= set(broken)  # an unknown key is named as the field
        path.write_text(json.dumps(broken))
    outcome = _outcome(lambda: read_bundle(path))
    if isinstance(outcome, ConfigError):
        assert isinstance(outcome, BundleError)
        _assert_names(outcome, path)
        if outcome.field is not None:
            assert outcome.field in known or outcome.field.split(".")[0] in known, outcome.field


def test_an_intact_bundle_reads_back(folder: Path, sealed_bundle: dict[str, Any]) -> None:
    path = folder / "intact.bundle"
    path.write_text(json.dumps(sealed_bundle))
    assert read_bundle(path).device_id == "door-1"


# --- scene files ------------------------------------------------------------------------

_points = st.lists(st.floats(-0.5, 1.5) | st.integers(-1, 2) | st.text(max_size=3),
                   min_size=0, max_size=3)


@FUZZ
@given(raw=raw_bytes)
def test_scene_from_any_bytes(folder: Path, raw: bytes) -> None:
    path = folder / "scene.toml"
    path.write_bytes(raw)
    outcome = _outcome(lambda: load_scene(path))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path)


@FUZZ
@given(threshold=st.lists(_points, max_size=3) | toml_values, inside=_points | toml_values,
       nested=st.booleans(), extra=st.none() | st.text(max_size=5))
def test_scene_with_any_geometry(
    folder: Path, threshold: Any, inside: Any, nested: bool, extra: str | None
) -> None:
    path = folder / "scene.toml"
    scene: dict[str, Any] = {"threshold": threshold, "inside_point": inside}
    if extra is not None:
        scene[extra] = 1
    path.write_text(tomli_w.dumps({"scene": scene} if nested else scene))
    outcome = _outcome(lambda: load_scene(path))
    if isinstance(outcome, ConfigError):
        _assert_names(outcome, path)

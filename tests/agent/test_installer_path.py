"""The installer's path as README and firmware_config/INSTALL.md tell it (issue 15, item 5).

Provision on the server, install the bundle on the device, commission with
the bundle's own credentials and no ``-c`` (``DOORWATCH_AGENT_CONFIG`` stands
in for ``/etc/doorwatch``, which a test may not write), against a real
Mosquitto over TLS and the real server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.commission import Commissioning
from agent.config_file import CONFIG_DIR, CONFIG_NAME
from agent.health import ClockStatus
from firmware_config.device_config import load_device_config
from server.service import serve
from tests.conftest import Mosquitto, Receiver
from tests.e2e.helpers import count, seed_household, server_settings

REPO = Path(__file__).resolve().parents[2]


def doorwatch(*args: str, env: dict[str, str] | None = None,
              drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``python -m doorwatch ARGS`` with the environment changed as given."""
    base = {k: v for k, v in os.environ.items()
            if k not in drop and not k.startswith(("DOORWATCH_AGENT", "DOORWATCH_LANG"))}
    return subprocess.run([sys.executable, "-m", "doorwatch", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**base, **(env or {})})


@pytest.mark.broker
async def test_bundle_then_commission_without_a_config_option(
    tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver
) -> None:
    device = "door-0101"
    server_toml = tmp_path / "server.toml"
    server_toml.write_text(f'database_url = "sqlite:///{tmp_path / "server.db"}"\n')
    bundle = tmp_path / f"{device}.bundle.json"
    etc, data = tmp_path / "etc", tmp_path / "data"
    async with serve(server_settings(tmp_path, mosquitto)) as server:
        household = await seed_household(server.db, "door-other", receiver.apprise_url)
        # LANG=C.UTF-8 is an English terminal (it used to give Chinese).
        done = await asyncio.to_thread(
            doorwatch, "device", "provision", "--id", device, "--household", str(household),
            "--broker-dir", str(mosquitto.broker.path), "--config", str(server_toml),
            "--out", str(bundle), env={"LANG": "C.UTF-8"}, drop=("LC_ALL", "LC_MESSAGES"))
        assert done.returncode == 0, done.stderr
        assert f"Device {device} provisioned" in done.stdout
        assert "No running Mosquitto" not in done.stderr  # the broker reloaded by itself
        done = await asyncio.to_thread(
            doorwatch, "agent", "install-bundle", str(bundle), "--config-dir", str(etc),
            "--data-dir", str(data), env={"DOORWATCH_LANG": "en"})
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in etc.iterdir()) == ["agent.toml", "ca.crt"]
        # The service reads these as its own user; only the password is private.
        assert {p.name: p.stat().st_mode & 0o777 for p in etc.iterdir()} == {
            "agent.toml": 0o644, "ca.crt": 0o644}
        assert (data / "credentials.json").stat().st_mode & 0o777 == 0o600
        config = load_device_config(etc / "agent.toml", use_override=False)
        assert config.mqtt.password is None  # the password is in the credentials file only
        assert config.mqtt.credentials_file == data / "credentials.json"
        assert await asyncio.to_thread(server.mqtt.connected.wait, 10)
        done = await asyncio.to_thread(
            doorwatch, "agent", "commission", "--simulate", "--aim", str(tmp_path / "aim.png"),
            env={"DOORWATCH_AGENT_CONFIG": str(etc / "agent.toml"), "DOORWATCH_LANG": "en"})
        assert "] Broker connection" in done.stdout, done.stdout + done.stderr
        assert "[PASS] Broker connection" in done.stdout, done.stdout
        assert "[PASS] Test event reaches the server" in done.stdout, done.stdout
        assert done.returncode == 0, done.stdout + done.stderr
        assert await count(server.db, "SELECT COUNT(*) FROM events WHERE device_id = ? "
                           "AND kind = 'commissioning'", (device,)) == 1


def test_every_name_is_agent_toml() -> None:
    """README, INSTALL.md, the systemd unit and install-bundle name the same file."""
    assert Path("/etc/doorwatch/agent.toml") == CONFIG_DIR / CONFIG_NAME
    for doc in ("README.md", "firmware_config/INSTALL.md", "systemd/doorwatch-agent.service",
                "docs/security.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        assert "device.toml" not in text, doc
    unit = (REPO / "systemd/doorwatch-agent.service").read_text(encoding="utf-8")
    assert "/etc/doorwatch/agent.toml" in unit


def test_no_configuration_says_where_it_looked(tmp_path: Path) -> None:
    nowhere = tmp_path / "etc" / "agent.toml"
    for command in (("agent", "commission"), ("agent", "run")):
        done = doorwatch(*command, env={"DOORWATCH_AGENT_CONFIG": str(nowhere),
                                        "DOORWATCH_LANG": "en"})
        assert done.returncode == 2, done.stderr
        assert "Field required" not in done.stderr
        assert str(nowhere) in done.stderr, done.stderr
        assert "install-bundle" in done.stderr
    done = doorwatch("agent", "commission", "-c", str(tmp_path / "typo.toml"),
                     env={"DOORWATCH_LANG": "en"})
    assert done.returncode == 2
    assert f"{tmp_path / 'typo.toml'}: device configuration file not found" in done.stderr
    if not (CONFIG_DIR / CONFIG_NAME).exists():  # the real default, on a machine without one
        done = doorwatch("agent", "commission", env={"DOORWATCH_LANG": "zh_CN"})
        assert done.returncode == 2
        assert "/etc/doorwatch/agent.toml" in done.stderr
        assert "没有设备配置" in done.stderr


def test_clock_advice_without_a_server_to_compare_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsynchronised and no server reached: no NTP advice (the clock may be right)."""
    monkeypatch.setattr("agent.commission.clock_status",
                        lambda: ClockStatus(synchronised=False, max_error_s=None, source="none"))
    config = load_device_config(None, device_id="door-1", data_dir=str(tmp_path),
                                language="en")
    check = Commissioning(config, pin_factory=None, open_source=None, scene=None,
                          aim_path=tmp_path / "aim.png")
    result = check.check_clock()
    assert not result.ok
    assert "not checked" in result.detail
    assert result.fix is not None
    assert "NTP" not in result.fix
    assert "broker" in result.fix
    check._offset = 42.0
    result = check.check_clock()
    assert "+42.0 s from the server's clock" in result.detail
    assert result.fix is not None
    assert "NTP" in result.fix


def test_lang_is_honoured_and_c_locale_is_english(tmp_path: Path) -> None:
    server_toml = tmp_path / "server.toml"
    server_toml.write_text(f'database_url = "sqlite:///{tmp_path / "server.db"}"\n')
    args = ("household", "assign-device", "1", "door-9999", "-c", str(server_toml))
    c_locale = doorwatch(*args, env={"LANG": "C.UTF-8"}, drop=("LC_ALL", "LC_MESSAGES"))
    assert "door-9999 is not registered" in c_locale.stderr, c_locale.stderr
    chinese = doorwatch(*args, env={"LANG": "C.UTF-8", "DOORWATCH_LANG": "zh_CN"},
                        drop=("LC_ALL", "LC_MESSAGES"))
    assert "设备 door-9999 未登记" in chinese.stderr, chinese.stderr
    flag = doorwatch("--lang", "en", *args, env={"LANG": "zh_CN.UTF-8"},
                     drop=("LC_ALL", "LC_MESSAGES"))
    assert "door-9999 is not registered" in flag.stderr, flag.stderr
    bad = doorwatch("--lang", "fr", *args)
    assert bad.returncode == 2
    assert "zh_CN or en" in bad.stderr


def test_unknown_device_is_not_assigned(tmp_path: Path) -> None:
    server_toml = tmp_path / "server.toml"
    server_toml.write_text(f'database_url = "sqlite:///{tmp_path / "server.db"}"\n')
    env = {"DOORWATCH_LANG": "en"}
    added = doorwatch("household", "add", "张三家", "幸福路 8 号", "-c", str(server_toml), env=env)
    assert added.returncode == 0, added.stderr
    done = doorwatch("household", "assign-device", "1", "door-9999", "-c", str(server_toml),
                     env=env)
    assert done.returncode == 1
    assert "Provision it first" in done.stderr
    listed = doorwatch("household", "devices", "--json", "-c", str(server_toml), env=env)
    assert "door-9999" not in listed.stdout


def test_server_run_needs_a_configuration_or_dev(tmp_path: Path) -> None:
    done = doorwatch("server", "run", env={"DOORWATCH_LANG": "en"}, drop=("DOORWATCH_CONFIG",))
    assert done.returncode == 2
    assert "no configuration file" in done.stderr
    assert "--dev" in done.stderr
    assert not list(tmp_path.iterdir())


def test_a_camera_without_a_door_line_is_allowed_and_unverified(tmp_path: Path) -> None:
    """Nobody types coordinates: a real camera's config loads without a scene, the camera
    runs without analysis and its episodes are unverified until the dashboard sends a line."""
    from agent.camera import NO_DOOR_LINE, CameraPipeline
    from agent.classify import EpisodeWindow, judge
    from broker.messages import EventKind
    from firmware_config.scene import Scene
    from sensors.frames import FrameSource

    config = load_device_config(None, device_id="door-1", data_dir=str(tmp_path),
                                camera={"backend": "picamera2"})
    assert config.camera.scene is None
    def never() -> FrameSource:
        raise AssertionError("not started in this test")

    pipeline = CameraPipeline(never, None, fps=10)
    evidence = pipeline.evidence(EpisodeWindow(0.0, 1.0), final=False)
    assert evidence.camera_problem == NO_DOOR_LINE
    assert judge(evidence).kind is EventKind.DOOR_OPEN_UNVERIFIED
    pipeline.set_scene(Scene(threshold=((0.2, 0.8), (0.8, 0.8)), inside_point=(0.5, 0.3)))
    # From now on the timeline (here: no frames) decides, not the missing line.
    assert pipeline.evidence(EpisodeWindow(0.0, 1.0), final=False).camera_problem != NO_DOOR_LINE


def test_commission_without_a_door_line_sends_the_bare_picture(tmp_path: Path) -> None:
    from sensors.frames import Frame

    config = load_device_config(None, device_id="door-1", data_dir=str(tmp_path),
                                language="en")
    check = Commissioning(config, pin_factory=None, open_source=None, scene=None,
                          aim_path=tmp_path / "aim.png")
    rng = np.random.default_rng(1)
    gray = rng.integers(60, 200, size=(240, 320), dtype=np.uint8)
    check._last_frame = Frame(index=0, t=0.0, gray=gray)
    result = check.check_aim()
    assert not result.ok
    assert "no door line yet" in result.detail
    assert result.fix is not None
    assert "Devices → door-1" in result.fix
    assert (tmp_path / "aim.png").read_bytes()[:4] == b"\x89PNG"
    jpeg = check._aim_jpeg()
    assert jpeg is not None
    assert jpeg[:2] == b"\xff\xd8"


def test_admin_commands_do_not_invent_a_database(tmp_path: Path) -> None:
    """Without -c (or the database in the environment) nothing is written to a stray file."""
    env = {"DOORWATCH_LANG": "en"}
    drop = ("DOORWATCH_CONFIG", "DOORWATCH_SERVER__DATABASE_URL")
    for args in (("household", "list"),
                 ("device", "provision", "--id", "door-1", "--broker-dir", str(tmp_path))):
        done = subprocess.run([sys.executable, "-m", "doorwatch", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**{k: v for k, v in os.environ.items() if k not in drop},
                                   **env})
        assert done.returncode == 2, done.stderr
        assert "no configuration file" in done.stderr
    assert not list(tmp_path.iterdir())

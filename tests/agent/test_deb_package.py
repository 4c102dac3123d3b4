"""The installer's package (firmware_config/deb): built here, its contents checked.

Installing it for real (dpkg -i in an arm64 Debian trixie root under qemu,
then the agent running from it) is ``make pi-test`` (tests/pi/run.sh).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.requirements import need

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("dpkg", shutil.which("dpkg-deb") is not None, "dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [str(ROOT / "firmware_config/deb/build.sh"), str(out)], capture_output=True, text=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable},
        timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], capture_output=True,
                          text=True, check=True).stdout.strip()


def _files(deb: Path) -> dict[str, bytes]:
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                          check=True).stdout
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(".")
            if member.issym():
                out[name] = f"-> {member.linkname}".encode()
            elif member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[name] = extracted.read()
    return out


def test_checksum_file_matches(deb: Path) -> None:
    line = deb.with_name(deb.name + ".sha256").read_text().split()
    assert line == [hashlib.sha256(deb.read_bytes()).hexdigest(), deb.name]


def test_control_depends_on_debians_opencv_and_numpy(deb: Path) -> None:
    assert _field(deb, "Package") == "doorwatch-agent"
    assert _field(deb, "Architecture") == "arm64"  # it carries aarch64 wheels
    assert deb.name.endswith("_arm64.deb")
    depends = {d.split()[0] for d in _field(deb, "Depends").split(", ")}
    assert {"python3-venv", "python3-opencv", "python3-numpy", "python3-numba",
            "adduser"} <= depends


def test_ships_the_repositorys_units_wheel_and_requirements(deb: Path) -> None:
    files = _files(deb)
    for unit in ("doorwatch-agent.service", "doorwatch-agent.path"):
        assert files[f"/lib/systemd/system/{unit}"] == (ROOT / "systemd" / unit).read_bytes()
    assert files["/usr/bin/doorwatch"] == b"-> /opt/doorwatch/venv/bin/doorwatch"
    wheels = [n for n in files if n.startswith("/opt/doorwatch/wheels/doorwatch-")]
    assert len(wheels) == 1
    assert wheels[0].endswith("-py3-none-any.whl")
    # The wheelhouse for an offline install: pure wheels, and the compiled ones for
    # aarch64 on Bookworm's Python 3.11 and Trixie's 3.13; none of this machine's.
    house = [n.rsplit("/", 1)[1] for n in files if n.startswith("/opt/doorwatch/wheels/")]
    assert all(w.endswith("-none-any.whl") or "aarch64" in w for w in house), house
    for tag in ("cp311", "cp313"):
        assert any(w.startswith("pydantic_core-") and f"-{tag}-" in w for w in house), house
    for name in ("paho_mqtt-", "pydantic-", "pydantic_settings-", "typer-", "gpiozero-",
                 "sdnotify-", "tomli_w-"):
        assert any(w.startswith(name) for w in house), (name, house)
    wanted = files["/opt/doorwatch/requirements.txt"].decode().split()
    names = {w.split(">")[0].split("=")[0] for w in wanted}
    assert {"paho-mqtt", "pydantic", "gpiozero", "sdnotify"} <= names
    # OpenCV and numpy come from Debian: a wheel beside them would shadow the apt packages.
    assert not names & {"numpy", "opencv-python-headless", "opencv-python"}
    assert "/usr/share/doorwatch/agent.example.toml" in files


def test_maintainer_scripts_are_valid_shell(deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path / "c")], check=True)
    for script in ("postinst", "prerm", "postrm"):
        path = tmp_path / "c" / script
        assert path.stat().st_mode & 0o111, f"{script} not executable"
        subprocess.run(["sh", "-n", str(path)], check=True)
    postinst = (tmp_path / "c" / "postinst").read_text()
    # The promises of issue 15 item 3, in the script that keeps them.
    for needle in ("--system-site-packages", "doorwatch gpio", "doorwatch video",
                   "doorwatch-agent.path", "waiting for its bundle", "--no-index"):
        assert needle in postinst


def test_path_unit_verifies_and_starts_the_agent(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    need("systemd", tool is not None, "systemd-analyze is not installed")
    assert tool is not None
    here = str(Path(sys.executable).parent / "doorwatch")
    for unit in ("doorwatch-agent.service", "doorwatch-agent.path"):
        text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
        (tmp_path / unit).write_text(text.replace("/opt/doorwatch/venv/bin/doorwatch", here),
                                     encoding="utf-8")
    result = subprocess.run([tool, "verify", str(tmp_path / "doorwatch-agent.path")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "doorwatch-agent" not in result.stdout + result.stderr
    path_unit = (ROOT / "systemd/doorwatch-agent.path").read_text(encoding="utf-8")
    service = (ROOT / "systemd/doorwatch-agent.service").read_text(encoding="utf-8")
    # Both name the file install-bundle writes, so the agent waits for exactly that.
    assert "PathExists=/etc/doorwatch/agent.toml" in path_unit
    assert "ConditionPathExists=/etc/doorwatch/agent.toml" in service
    assert "--config /etc/doorwatch/agent.toml" in service

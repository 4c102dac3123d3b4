"""Start Mosquitto on a broker directory and wait until it listens."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from broker.broker_dir import BrokerDir
from doorwatch.errors import ConfigError, DoorwatchError

__all__ = ["BrokerStartError", "find_mosquitto", "start_mosquitto", "wait_for_port"]

# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


class BrokerStartError(DoorwatchError, RuntimeError):
    """Mosquitto would not start with our configuration."""

    def __init__(self, message: str, *, config: Path, log: str = ""):
        self.config = config
        self.log = log
        super().__init__(f"{config}: {message}" + (f"\n{log}" if log else ""))


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if Path(c).exists()), None)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_mosquitto(broker: BrokerDir, *, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Start Mosquitto on ``broker``'s config; raise with its log if it does not come up."""
    binary = find_mosquitto()
    if binary is None:
        raise ConfigError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    if not broker.config_file.exists():
        raise ConfigError("no mosquitto.conf (run `doorwatch broker init`)", path=broker.path)
    process = subprocess.Popen(
        [binary, "-c", str(broker.config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    broker.pid_file.write_text(f"{process.pid}\n")
    if wait_for_port(broker.host, broker.port, timeout):
        return process
    process.kill()
    _, err = process.communicate(timeout=5)
    log_path = broker.path / "mosquitto.log"
    log = err.decode(errors="replace")
    if log_path.exists():
        log += log_path.read_text(errors="replace")[-4000:]
    raise BrokerStartError(
        f"mosquitto did not start listening on {broker.host}:{broker.port}",
        config=broker.config_file,
        log=log.strip(),
    )

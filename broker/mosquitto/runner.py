"""Start Mosquitto on a broker directory and wait until it listens."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from broker.mosquitto.directory import BrokerDir
from ground.errors import ConfigError, DoorwatchError
from ground.logs import get_logger

__all__ = [
    "BrokerStartError",
    "find_mosquitto",
    "release_pid_file",
    "start_mosquitto",
    "wait_for_port",
]

_log = get_logger(__name__)

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


def wait_for_port(
    host: str, port: int, timeout: float = 10.0, *, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Wait until something accepts TCP connections on host:port (or ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _listeners(broker: BrokerDir) -> list[tuple[str, int]]:
    state = broker.state()
    found = [(broker.host, state.port)]
    if state.loopback_port is not None:
        found.append(("127.0.0.1", state.loopback_port))
    return found


def _logged_running(
    broker: BrokerDir, offset: int, process: subprocess.Popen[bytes], timeout: float
) -> bool:
    log_path = broker.log_file
    if f"log_dest file {log_path}" not in broker.config_file.read_text(encoding="utf-8"):
        return process.poll() is None  # logging elsewhere: the open ports must do
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if log_path.exists():
            with log_path.open("rb") as handle:
                handle.seek(offset)
                if b" running" in handle.read():
                    return process.poll() is None
        time.sleep(0.05)
    return False


def start_mosquitto(
    broker: BrokerDir, *, timeout: float = 10.0, check: bool = True
) -> subprocess.Popen[bytes]:
    """Start Mosquitto on ``broker``'s config; raise with its log if it does not come up.

    ``check`` first brings the generated files of a directory made by an older
    ``init`` up to date (:meth:`BrokerDir.upgrade`: the loopback listener's own
    password file) and runs :meth:`BrokerDir.check`, so unsafe key permissions or
    a corrupt certificate are reported by file instead of as a Mosquitto failure.
    """
    binary = find_mosquitto()
    if binary is None:
        raise ConfigError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    if not broker.config_file.exists():
        raise ConfigError("no mosquitto.conf (run `doorwatch broker init`)", path=broker.path)
    if check:
        broker.state()  # a missing or corrupt state file is reported as such first
        if broker.upgrade():
            _log.info("broker files rewritten for this version", extra={"dir": str(broker.path)})
        broker.check()
    running = broker.running_pid()
    if running is not None:
        # Starting anyway would fail on the ports, and must not overwrite the pid file
        # that `device provision` uses to make the live broker reload.
        raise BrokerStartError(f"mosquitto is already running on this directory (pid {running}, "
                               f"{broker.pid_file})", config=broker.config_file)
    log_path = broker.log_file
    log_start = log_path.stat().st_size if log_path.exists() else 0
    process = subprocess.Popen(
        [binary, "-c", str(broker.config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    down = [(h, p) for h, p in _listeners(broker)
            if not wait_for_port(h, p, timeout, process=process)]
    # Something else may hold the port: only Mosquitto's own "running" line
    # (logged once every listener is open) proves it is ours.
    if not down and _logged_running(broker, log_start, process, timeout):
        # Written only once this process is the broker: a failed start leaves any pid file be.
        broker.pid_file.write_text(f"{process.pid}\n")
        return process
    down = down or _listeners(broker)
    if process.poll() is None:
        process.kill()
    _, err = process.communicate(timeout=5)
    log = err.decode(errors="replace")
    if log_path.exists():
        with log_path.open("rb") as handle:
            handle.seek(log_start)
            log += handle.read()[-4000:].decode(errors="replace")
    where = ", ".join(f"{h}:{p}" for h, p in down)
    raise BrokerStartError(
        f"mosquitto did not start listening on {where} (exit code {process.returncode})",
        config=broker.config_file,
        log=log.strip(),
    )


def release_pid_file(broker: BrokerDir, pid: int) -> None:
    """Remove the pid file after our Mosquitto (``pid``) stopped, unless it names another."""
    try:
        if int(broker.pid_file.read_text().strip()) == pid:
            broker.pid_file.unlink()
    except (FileNotFoundError, ValueError):
        pass

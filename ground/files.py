"""Files that hold secrets: written owner-only, refused when others can read them.

A broker key or a device password readable by other accounts on the machine
is as good as published, so every reader of such a file checks its mode and
owner first and names the file and the fix when they are wrong.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ground.errors import ConfigError

__all__ = ["check_private", "write_private"]


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` so that only the owner can read it, replacing ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
    os.replace(tmp, path)


def check_private(path: Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` exists, is ours and is not readable by others."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError("file is missing", path=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError("not a regular file", path=path)
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"owned by uid {info.st_uid}, not by this account (uid {os.geteuid()})", path=path
        )
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if loose:
        raise ConfigError(
            f"unsafe permissions {stat.S_IMODE(info.st_mode):04o}: group/others may access a "
            f"secret; run `chmod 600 {path}`",
            path=path,
        )

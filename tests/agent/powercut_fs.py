"""A FUSE file system that loses, at a power cut, everything not yet fsynced.

    python -m tests.agent.powercut_fs BACKING MOUNTPOINT [--cut-after N] [--count-file F]

Files live in ``BACKING``; what is written through ``MOUNTPOINT`` stays in this
process's memory (per file: its dirty 4 KiB blocks and its size) and reaches
``BACKING`` only when the file is fsynced (``fsync``/``fdatasync``). Reads see
the unsynced data, as reads from a page cache do. After ``N`` changing
operations (write, truncate, fsync, create, rename, unlink, ...) the process
"loses power": it exits at once with nothing more written, so ``BACKING``
holds exactly what had been fsynced, and the program under test gets errors
from then on. Directory operations (create, rename, unlink) reach ``BACKING``
at once, as in LazyFS; file contents and sizes do not.

This is the page-cache model of LazyFS (its "clear-cache" fault), written here
because the project may not ship a script that builds fetched code; it is a
passthrough of ~200 lines over fusepy (Debian's libfuse2 and fuse3's
fusermount) rather than a kernel or C component.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any

from fuse import FUSE, FuseOSError, Operations  # type: ignore[import-untyped]

BLOCK = 4096


class _Dirty:
    """Unsynced state of one file: its logical size and changed blocks."""

    def __init__(self, size: int) -> None:
        self.size = size
        # BACKING's bytes from here on are gone (a pending truncate): they read as zeros.
        self.zero_from = size
        self.blocks: dict[int, bytearray] = {}


class PowerCutFS(Operations):  # type: ignore[misc]
    """Passthrough to ``root`` whose file data waits in memory until fsync."""

    def __init__(self, root: str, cut_after: int | None, count_file: str | None) -> None:
        self.root = root
        self.cut_after = cut_after
        self.count_file = count_file
        self.ops = 0
        self.dirty: dict[str, _Dirty] = {}

    # bookkeeping

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _tick(self) -> None:
        """Count a changing operation; at the cut, lose power before doing it."""
        self.ops += 1
        if self.cut_after is not None and self.ops >= self.cut_after:
            self._record()
            os._exit(0)  # nothing in memory survives; BACKING keeps what was synced

    def _record(self) -> None:
        if self.count_file:
            Path(self.count_file).write_text(str(self.ops), encoding="utf-8")

    def _state(self, path: str) -> _Dirty:
        state = self.dirty.get(path)
        if state is None:
            state = _Dirty(os.stat(self._full(path)).st_size)
            self.dirty[path] = state
        return state

    def _block(self, path: str, state: _Dirty, index: int) -> bytearray:
        block = state.blocks.get(index)
        if block is None:
            with open(self._full(path), "rb") as f:
                f.seek(index * BLOCK)
                block = bytearray(f.read(BLOCK).ljust(BLOCK, b"\0"))
            cut = max(0, state.zero_from - index * BLOCK)
            if cut < BLOCK:
                block[cut:] = bytes(BLOCK - cut)
            state.blocks[index] = block
        return block

    def _sync(self, path: str) -> None:
        state = self.dirty.pop(path, None)
        if state is None:
            return
        fd = os.open(self._full(path), os.O_WRONLY)
        try:
            os.ftruncate(fd, min(state.zero_from, state.size))
            os.ftruncate(fd, state.size)
            for index, block in sorted(state.blocks.items()):
                start = index * BLOCK
                if start < state.size:
                    os.pwrite(fd, bytes(block[: state.size - start]), start)
            os.fsync(fd)
        finally:
            os.close(fd)

    # metadata

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        """stat, with the unsynced size."""
        try:
            st = os.lstat(self._full(path))
        except OSError as exc:
            raise FuseOSError(exc.errno) from exc
        attrs = {key: getattr(st, key) for key in (
            "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size",
            "st_uid")}
        if path in self.dirty:
            attrs["st_size"] = self.dirty[path].size
        return attrs

    def readdir(self, path: str, fh: Any) -> list[str]:
        """Directory listing."""
        return [".", "..", *os.listdir(self._full(path))]

    def access(self, path: str, amode: int) -> None:
        """Permission check."""
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path: str, mode: int) -> None:
        """chmod (metadata: at once)."""
        self._tick()
        os.chmod(self._full(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        """chown (metadata: at once)."""
        self._tick()
        os.chown(self._full(path), uid, gid)

    def utimens(self, path: str, times: Any = None) -> None:
        """Times are not worth losing: at once."""
        os.utime(self._full(path), times)

    def mkdir(self, path: str, mode: int) -> None:
        """mkdir (at once)."""
        self._tick()
        os.mkdir(self._full(path), mode)

    def rmdir(self, path: str) -> None:
        """rmdir (at once)."""
        self._tick()
        os.rmdir(self._full(path))

    def unlink(self, path: str) -> None:
        """unlink (at once); the file's unsynced data goes with it."""
        self._tick()
        os.unlink(self._full(path))
        self.dirty.pop(path, None)

    def rename(self, old: str, new: str) -> None:
        """rename (at once); unsynced data moves with the file, still unsynced."""
        self._tick()
        os.rename(self._full(old), self._full(new))
        self.dirty.pop(new, None)
        if old in self.dirty:
            self.dirty[new] = self.dirty.pop(old)

    def statfs(self, path: str) -> dict[str, Any]:
        """File system figures of BACKING."""
        st = os.statvfs(self._full(path))
        return {key: getattr(st, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
            "f_flag", "f_frsize", "f_namemax")}

    # files

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        """Create an empty file (the directory entry at once)."""
        self._tick()
        fd = os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.close(fd)
        self.dirty.pop(path, None)
        return 0

    def open(self, path: str, flags: int) -> int:
        """Open: nothing to keep per handle (state is per file)."""
        if not os.path.exists(self._full(path)):
            raise FuseOSError(errno.ENOENT)
        if flags & os.O_TRUNC:
            self.truncate(path, 0)
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        """Read through the unsynced blocks."""
        state = self.dirty.get(path)
        if state is None:
            with open(self._full(path), "rb") as f:
                f.seek(offset)
                return f.read(size)
        end = min(offset + size, state.size)
        out = bytearray()
        pos = offset
        while pos < end:
            index, within = divmod(pos, BLOCK)
            take = min(BLOCK - within, end - pos)
            out += self._block(path, state, index)[within:within + take]
            pos += take
        return bytes(out)

    def write(self, path: str, data: bytes, offset: int, fh: Any) -> int:
        """Write into memory only."""
        self._tick()
        state = self._state(path)
        pos = 0
        while pos < len(data):
            index, within = divmod(offset + pos, BLOCK)
            take = min(BLOCK - within, len(data) - pos)
            self._block(path, state, index)[within:within + take] = data[pos:pos + take]
            pos += take
        state.size = max(state.size, offset + len(data))
        return len(data)

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        """Change the size in memory only."""
        self._tick()
        state = self._state(path)
        for index in [i for i in state.blocks if i * BLOCK >= length]:
            del state.blocks[index]
        last, within = divmod(length, BLOCK)
        if last in state.blocks:
            state.blocks[last][within:] = bytes(BLOCK - within)
        state.zero_from = min(state.zero_from, length)
        state.size = length

    def flush(self, path: str, fh: Any) -> None:
        """close() is not a sync: nothing to do."""

    def release(self, path: str, fh: Any) -> None:
        """Nothing per handle."""

    def fsync(self, path: str, datasync: int, fh: Any) -> None:
        """The one way data reaches BACKING."""
        self._tick()
        self._sync(path)

    def fsyncdir(self, path: str, datasync: int, fh: Any) -> None:
        """Directory operations are already on BACKING."""
        self._tick()


def main(argv: list[str] | None = None) -> None:
    """Mount BACKING at MOUNTPOINT in the foreground until unmounted or cut."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--cut-after", type=int, default=None,
                        help="lose power at this changing operation (1 = the first)")
    parser.add_argument("--count-file", default=None,
                        help="write the number of changing operations here at exit")
    args = parser.parse_args(argv)
    fs = PowerCutFS(os.path.abspath(args.backing), args.cut_after, args.count_file)
    # An orderly unmount (fusermount -u) ends FUSE(); SIGTERM does the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        FUSE(fs, args.mountpoint, foreground=True, nothreads=True)
    finally:
        fs._record()


if __name__ == "__main__":
    main()

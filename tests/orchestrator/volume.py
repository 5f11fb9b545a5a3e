"""A real filesystem a test can fill up and free again under a running server.

As root, :class:`Tmpfs` mounts a small tmpfs and fills it with a file until
the kernel answers ``ENOSPC``: the server's next write that needs a block fails
exactly as on a full disk. Where mounting is not allowed, :class:`FileSizeLimit`
lowers the server process's ``RLIMIT_FSIZE`` to 0 (``prlimit``), so that every
write to a regular file fails with ``EFBIG`` (CPython ignores ``SIGXFSZ``), and
raises it again to free the "disk". :func:`small_volume` picks one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_CHUNK = b"\0" * (64 * 1024)


class Volume(Protocol):
    directory: Path
    """Where the server's database goes."""
    kind: str

    def fill(self, pid: int) -> None:
        """Make writes by process ``pid`` under ``directory`` fail."""

    def free(self, pid: int) -> None:
        """Let them succeed again."""


class Tmpfs:
    kind = "tmpfs"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def fill(self, pid: int) -> None:
        fd = os.open(self.directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (_CHUNK * 16, _CHUNK[:4096]):  # then the last partial pages
                while True:
                    try:
                        os.write(fd, chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "filler").unlink()


class FileSizeLimit:
    kind = "RLIMIT_FSIZE"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def fill(self, pid: int) -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    def free(self, pid: int) -> None:
        resource.prlimit(
            pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )


@contextlib.contextmanager
def small_volume(base: Path, size: str = "16m") -> Iterator[Volume]:
    """A tmpfs of ``size`` at ``base/volume`` when mounting works, else :class:`FileSizeLimit`."""
    directory = base / "volume"
    directory.mkdir()
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            capture_output=True,
        ).returncode
        == 0
    )
    if not mounted:
        yield FileSizeLimit(directory)
        return
    try:
        yield Tmpfs(directory)
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)

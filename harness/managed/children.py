"""Child processes the harness starts, each in its own process group, all reaped.

A serve command may be a wrapper script that starts the real server as its own
child, so signals go to the whole process group (``killpg``), never to the
shell alone. Every group started is registered until it has exited;
:func:`reap_all` (called at the end of a pytest session and at interpreter
exit) kills whatever is left, so no server or engine outlives the run that
started it, also when a test fails or the run is interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["ChildGroup", "reap_all", "running_groups"]

TERM_GRACE_S = 10.0
"""How long a terminated child gets to exit before it is killed."""

_running: set[ChildGroup] = set()
_lock = threading.Lock()


class ChildGroup:
    """One child process as the leader of a new process group (``start_new_session``)."""

    def __init__(
        self,
        args: str | Sequence[str],
        *,
        shell: bool = False,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout: IO[bytes] | int | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            args,
            shell=shell,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.process.pid
        with _lock:
            _running.add(self)

    @property
    def alive(self) -> bool:
        """Whether the group's leader is still running."""
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every process of the group (none left: nothing happens)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and wait for the leader."""
        self.signal(signal.SIGKILL)
        self._reap()

    def terminate(self, grace_s: float = TERM_GRACE_S) -> int | None:
        """SIGTERM the group; SIGKILL what is left of it after ``grace_s``.

        Returns the leader's exit status (negative: ended by that signal).
        """
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        # A wrapper may exit before the server it started has shut down: wait for the group.
        while self._group_exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.signal(signal.SIGKILL)
        self._reap()
        return self.process.returncode

    def _group_exists(self) -> bool:
        if self.process.poll() is None:
            return True
        try:
            os.killpg(self.pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _reap(self) -> None:
        self.process.wait()
        # Whatever the leader left behind in its group (a wrapper's child) goes with it.
        self.signal(signal.SIGKILL)
        with _lock:
            _running.discard(self)


def running_groups() -> list[ChildGroup]:
    """The groups started and not yet reaped (what :func:`reap_all` would kill)."""
    with _lock:
        return list(_running)


def reap_all() -> int:
    """Kill every group still registered; returns how many there were."""
    groups = running_groups()
    for group in groups:
        group.kill()
    return len(groups)


atexit.register(reap_all)

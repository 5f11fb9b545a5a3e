"""A real ``orchq serve`` child process that tests can ``kill -9`` and restart.

Crash-recovery tests (``test_restart.py``, ``runtime/test_fairness_restart.py``)
need a server in another process: a thread cannot be killed without running
its shutdown path. The ``serve_process`` fixture (tests/orchestrator/conftest.py)
starts them and stops whatever is still alive at teardown. Everything the
process prints but the line naming its URL is kept (``output``); a thread
reads it, so a chatty server (an access log) never blocks on a full pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support import wait_until


def serve_argv(config: Path, db: Path, *args: str) -> list[str]:
    """The command line of ``orchq serve --port 0`` on ``config`` and ``db``."""
    return [
        sys.executable,
        "-m",
        "harness",
        "serve",
        "--port",
        "0",
        "--config",
        str(config),
        "--db",
        str(db),
        *args,
    ]


class ServeProcess:
    """``orchq serve --port 0`` as a child process; the bound URL is read from its stdout.

    ``preexec_fn`` runs in the child before ``exec`` (e.g. to lower a resource limit).
    """

    def __init__(
        self,
        config: Path,
        db: Path,
        *,
        args: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            serve_argv(config, db, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec_fn,
        )
        assert self.proc.stdout is not None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        for line in self.proc.stdout:  # warnings may come before the server is up
            if "serving OrchQueue v1 on " in line:
                self.url = line.split(" on ", 1)[1].split()[0]
                break
            self._lines.append(line.rstrip("\n"))
        else:
            self.proc.wait(timeout=10)
            raise AssertionError(f"orchq serve did not start: {self._lines}")
        threading.Thread(target=self._collect, name="serve-output", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def output(self) -> list[str]:
        """The lines printed so far but the one naming the URL (stdout and stderr)."""
        with self._lock:
            return list(self._lines)

    def wait_for_output(self, needle: str, timeout: float = 10.0) -> str:
        """The first output line containing ``needle``; fails after ``timeout`` seconds."""
        found: list[str] = []

        def printed() -> bool:
            found[:] = [line for line in self.output() if needle in line]
            return bool(found)

        try:
            wait_until(printed, timeout=timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(
                f"orchq serve printed no line containing {needle!r} within {timeout} s: "
                f"{self.output()[-20:]}"
            ) from None
        return found[0]

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


StartProcess = Callable[..., ServeProcess]
"""The ``serve_process`` fixture: ``start(config, db, args=..., preexec_fn=...)``."""


def single_slot_config(path: Path, **pool_keys: Any) -> Path:
    """Write a config with one pool ``default`` whose only replica has one slow slot.

    One slot makes attempt start order the dispatch order, and 40 ms tokens keep
    a task running long enough to be killed mid-stream; ``pool_keys`` add to
    (or override) the pool's keys.
    """
    pool: dict[str, Any] = {
        "pool_id": "default",
        "replicas": [{"replica_id": "r1", "slots": 1, "token_delay_ms": 40}],
        **pool_keys,
    }
    path.write_text(yaml.safe_dump({"pools": [pool]}), encoding="utf-8")
    return path


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as a YAML config file at ``path``."""
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path

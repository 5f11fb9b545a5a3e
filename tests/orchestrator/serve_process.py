"""A real ``orchq serve`` child process that tests can ``kill -9`` and restart.

Crash-recovery tests (``test_restart.py``, ``runtime/test_fairness_restart.py``)
need a server in another process: a thread cannot be killed without running
its shutdown path. The ``serve_process`` fixture (tests/orchestrator/conftest.py)
starts them and stops whatever is still alive at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


class ServeProcess:
    """``orchq serve --port 0`` as a child process; the bound URL is read from its stdout."""

    def __init__(self, config: Path, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "serve", "--port", "0",
             "--config", str(config), "--db", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving OrchQueue v1 on " not in line:
            self.proc.kill()
            raise AssertionError(f"orchq serve did not start: {line!r}")
        self.url = line.split(" on ", 1)[1].split()[0]

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

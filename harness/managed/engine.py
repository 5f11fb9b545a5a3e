"""The harness's mock engine as a process of its own: ``orchq engine serve --model mock --port 0``.

Targets the harness starts point their replicas at it (``base_url:
<engine>/replicas/<id>``), so its fault rules drive any implementation's
replicas, and the ledger it keeps says what they made it generate. As a
separate process it keeps decoding at its own pace whatever the test process
does, and outlives every restart of the targets that use it.

Its first line of output names its URL; everything it writes goes to a log
file, so a chatty engine can never block on a full pipe.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from harness.managed.children import ChildGroup

__all__ = ["EngineProcess"]

STARTUP_TIMEOUT_S = 60.0
_URL = re.compile(r"serving \S+ on (http://\S+)")


class EngineProcess:
    """``orchq engine serve --model mock`` on a free port, logging into ``log``."""

    def __init__(self, log: Path, *, startup_timeout: float = STARTUP_TIMEOUT_S) -> None:
        self.log = log
        self.startup_timeout = startup_timeout
        self.url = ""
        self._group: ChildGroup | None = None

    def start(self) -> EngineProcess:
        args = [
            sys.executable,
            "-m",
            "harness",
            "engine",
            "serve",
            "--model",
            "mock",
            "--port",
            "0",
        ]
        with self.log.open("wb") as out:
            self._group = ChildGroup(args, stdout=out)
        deadline = time.monotonic() + self.startup_timeout
        while not self.url:
            found = _URL.search(self.log.read_text(encoding="utf-8", errors="replace"))
            if found:
                self.url = found.group(1)
                break
            if not self._group.alive or time.monotonic() > deadline:
                self._group.kill()
                text = self.log.read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"orchq engine serve --model mock did not start:\n{text}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._group is not None:
            self._group.terminate()

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

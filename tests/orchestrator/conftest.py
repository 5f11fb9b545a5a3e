"""Fixtures for the orchestratord tests that need a server in a child process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.serve_process import ServeProcess, StartProcess


@pytest.fixture
def serve_process() -> Iterator[StartProcess]:
    """``serve_process(config, db, args=..., preexec_fn=...)``: a started ``orchq serve``.

    Every process started is stopped (SIGTERM, then SIGKILL) at teardown.
    """
    started: list[ServeProcess] = []

    def start(config: Path, db: Path, **kwargs: Any) -> ServeProcess:
        process = ServeProcess(config, db, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()

"""Fixtures for the orchestratord tests that need a server in a child process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.orchestrator.serve_process import ServeProcess


@pytest.fixture
def serve_process() -> Iterator[Callable[[Path, Path], ServeProcess]]:
    """``serve_process(config, db)``: a started ``orchq serve``; all are stopped at teardown."""
    started: list[ServeProcess] = []

    def start(config: Path, db: Path) -> ServeProcess:
        process = ServeProcess(config, db)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()

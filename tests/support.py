"""Helpers shared by the project's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from orchestrator.client import OrchClient, StreamResult
from orchestrator.config import Config, parse_config
from orchestrator.server import ServerThread

ServeFactory = Callable[..., ServerThread]
"""The ``serve`` fixture (tests/conftest.py): ``serve(config=None, **kwargs)`` starts a server."""

ConfigFactory = Callable[..., Config]
"""The ``make_config`` fixture: ``make_config(**top_level_keys)`` on the test's database."""


def config_with(database: str, **overrides: Any) -> Config:
    """A validated config: the embedded default with top-level keys overridden.

    Pools are given as plain dicts, exactly as they would appear in YAML.
    """
    data: dict[str, Any] = {"database": database}
    data.update(overrides)
    return parse_config(data, source="test config")


def pool(
    pool_id: str = "default", replicas: int | list[dict[str, Any]] = 2, **keys: Any
) -> dict[str, Any]:
    """A pool mapping with mock replicas ``r1..rN`` (or the replica mappings given)."""
    if isinstance(replicas, int):
        replicas = [{"replica_id": f"r{i + 1}"} for i in range(replicas)]
    return {"pool_id": pool_id, "replicas": replicas, **keys}


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def run_task(
    client: OrchClient, session_id: str, prompt: str = "hello", **kwargs: Any
) -> StreamResult:
    """Admit a task and collect its whole stream."""
    admitted = client.submit_task(session_id, prompt, **kwargs)
    return client.collect_stream(admitted.task_id)


def process_alive(pid: int) -> bool:
    """Whether a process with this ID exists (a zombie too, until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Wait until the process is gone; False if it still lives after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

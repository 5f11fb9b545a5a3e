"""The database lock: exclusive across lock objects, released on release, none for memory.

Spec: ORCH-0174, ORCH-0175 (a real second process and kill -9: tests/orchestrator/
test_database_lock.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.config import Config
from orchestrator.store.lock import DatabaseInUse, DatabaseLock
from tests.support import ServeFactory


@pytest.mark.req("ORCH-0174")
def test_a_second_lock_on_the_same_database_is_refused_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "orchq.db")
    first, second = DatabaseLock(database), DatabaseLock(str(tmp_path / "." / "orchq.db"))
    first.acquire()
    assert first.held
    started = time.monotonic()
    with pytest.raises(DatabaseInUse, match=r"orchq\.db is in use by another orchestratord"):
        second.acquire(wait_s=0.2)
    assert time.monotonic() - started >= 0.2
    first.release()
    second.acquire()
    assert second.held and not first.held
    second.release()


def test_an_in_memory_database_has_nothing_to_lock() -> None:
    lock = DatabaseLock(":memory:")
    lock.acquire()
    DatabaseLock(":memory:").acquire()
    assert not lock.held


@pytest.mark.req("ORCH-0174")
def test_a_second_in_process_server_on_the_same_database_does_not_start(
    serve: ServeFactory, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    serve(config)
    with pytest.raises(RuntimeError, match="is in use by another orchestratord"):
        serve(config)

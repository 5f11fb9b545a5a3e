"""Retention: ended and expired sessions are purged with everything they own, not before.

The server's clock is a :class:`ManualClock` and its janitor runs every 20 ms
instead of every minute (the interval is a module constant, patched for the
test), so days of retention take a few hundred milliseconds of real time.

Spec: ORCH-0035, ORCH-0036, ORCH-0037.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import httpx
import pytest

from orchestrator.config import Config
from orchestrator.runtime import ManualClock
from orchestrator.runtime import service as runtime_service
from tests.orchestrator.api.envelope import assert_error
from tests.orchestrator.wire import HttpFactory, admit, new_session, wait_terminal
from tests.support import ServeFactory, wait_until

RETENTION_S = 100
JANITOR_S = 0.02


def rows_owned(db_path: str, task_id: str) -> tuple[int, int, int]:
    """Rows of one task in ``tasks``, ``attempts`` and ``task_events``."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        counts = tuple(
            db.execute(f"SELECT COUNT(*) FROM {table} WHERE task_id = ?", (task_id,)).fetchone()[0]
            for table in ("tasks", "attempts", "task_events")
        )
    return counts  # type: ignore[return-value]


def idle_janitor_runs() -> None:
    """Give the janitor several turns with the clock standing still."""
    time.sleep(JANITOR_S * 10)


def gone(http: httpx.Client, session_id: str, task_id: str) -> None:
    assert_error(http.get(f"/v1/sessions/{session_id}"), 404, "NOT_FOUND")
    assert_error(http.get(f"/v1/tasks/{task_id}"), 404, "NOT_FOUND")
    assert_error(http.delete(f"/v1/tasks/{task_id}"), 404, "NOT_FOUND")
    assert_error(http.get(f"/v1/tasks/{task_id}/stream"), 404, "NOT_FOUND")


@pytest.mark.req("ORCH-0035", "ORCH-0036", "ORCH-0037")
def test_sessions_are_purged_once_retention_has_passed_and_not_before(
    serve: ServeFactory,
    make_config: Callable[..., Config],
    connect: HttpFactory,
    db_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime_service, "JANITOR_INTERVAL_S", JANITOR_S)
    clock = ManualClock()
    http = connect(serve(make_config(retention_seconds=RETENTION_S), clock=clock))
    ended = new_session(http, ttl_seconds=3600)
    expiring = new_session(http, ttl_seconds=10)
    ended_task = admit(http, ended, max_tokens=3)["task_id"]
    expiring_task = admit(http, expiring, max_tokens=3)["task_id"]
    for task_id in (ended_task, expiring_task):
        assert wait_terminal(http, task_id)["state"] == "completed"
        assert rows_owned(db_path, task_id)[0] == 1
        assert all(n > 0 for n in rows_owned(db_path, task_id)), rows_owned(db_path, task_id)
    assert http.delete(f"/v1/sessions/{ended}").status_code == 204  # ended at t=0

    # t = 99 s: the ended session is within retention, the expired one (t = 10 s) too.
    clock.advance((RETENTION_S - 1) * 1000)
    idle_janitor_runs()
    assert http.get(f"/v1/tasks/{ended_task}").status_code == 200, (
        "ORCH-0036: a task of an ended session was purged before retention_seconds"
    )
    assert_error(http.get(f"/v1/sessions/{expiring}"), 410, "SESSION_EXPIRED")
    assert http.get(f"/v1/tasks/{expiring_task}").status_code == 200
    assert all(n > 0 for n in rows_owned(db_path, ended_task))

    # t = 101 s: the ended session's retention is over; the expired one has 9 s to go.
    clock.advance(2_000)
    try:
        wait_until(lambda: http.get(f"/v1/tasks/{ended_task}").status_code == 404, timeout=5)
    except AssertionError:
        raise AssertionError(
            "ORCH-0036: an ended session was not purged after retention_seconds"
        ) from None
    gone(http, ended, ended_task)
    assert rows_owned(db_path, ended_task) == (0, 0, 0), (
        "ORCH-0036: the purge left attempts or stream events behind"
    )
    idle_janitor_runs()
    assert_error(http.get(f"/v1/sessions/{expiring}"), 410, "SESSION_EXPIRED")
    assert http.get(f"/v1/tasks/{expiring_task}").status_code == 200, (
        "ORCH-0036: an expired session was purged before retention_seconds"
    )

    # t = 111 s: 101 s since the other session expired.
    clock.advance(10_000)
    try:
        wait_until(lambda: http.get(f"/v1/sessions/{expiring}").status_code == 404, timeout=5)
    except AssertionError:
        raise AssertionError(
            "ORCH-0036: an expired session was not purged after retention_seconds"
        ) from None
    gone(http, expiring, expiring_task)
    assert rows_owned(db_path, expiring_task) == (0, 0, 0)
    assert_error(
        http.post("/v1/tasks", json={"session_id": expiring, "prompt": "p"}), 404, "NOT_FOUND"
    )

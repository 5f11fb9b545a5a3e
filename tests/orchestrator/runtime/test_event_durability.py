"""When stream events reach SQLite: the first token before any reader sees it, and a
one-token task's events together with its end.

The event writer's own periodic flush is switched off here, so only the
runtime's explicit commits persist anything: a first token left to the
periodic flush would be missing from the database when the client reads it.

Spec: ORCH-0142 (recovery must know that a best_effort task sent tokens), ORCH-0065.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.config import Config
from orchestrator.runtime.event_writer import EventWriter
from orchestrator.server import ServerThread
from tests.orchestrator.runtime.gated_engine import Gate
from tests.support import pool, wait_until

ServeFactory = Callable[..., ServerThread]
ConfigFactory = Callable[..., Config]


@pytest.fixture
def explicit_flushes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_flush(self: EventWriter) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(EventWriter, "_run", never_flush)


def _stored_events(db_path: str, task_id: str) -> list[str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT event FROM task_events WHERE task_id = ? ORDER BY seq", (task_id,)
        ).fetchall()
    return [event for (event,) in rows]


@pytest.mark.req("ORCH-0142")
@pytest.mark.usefixtures("explicit_flushes_only")
def test_the_first_token_is_durable_before_a_reader_gets_it(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    gate = Gate(hold_before=1)  # the engine holds after its first token
    replica = {"replica_id": "r1", "token_delay_ms": 0}
    server = serve(
        make_config(pools=[pool("default", replicas=[replica])]), engine_factory=gate.factory
    )
    with OrchClient(server.url) as client, httpx.Client(timeout=30) as http:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "durable first token", max_tokens=4).task_id
        try:
            with http.stream("GET", f"{server.url}/v1/tasks/{task_id}/stream") as response:
                for line in response.iter_lines():
                    if line == "event: token":
                        stored = _stored_events(db_path, task_id)
                        assert stored == ["started", "token"], (
                            "ORCH-0142: the first token reached a reader before it was "
                            f"committed (stored events: {stored})"
                        )
                        break
                else:
                    raise AssertionError(f"stream of {task_id} ended without a token")
        finally:
            gate.open()
        wait_until(lambda: client.get_task(task_id).state == "completed")
    assert _stored_events(db_path, task_id) == ["started", *["token"] * 4, "end"]


@pytest.mark.req("ORCH-0065")
@pytest.mark.usefixtures("explicit_flushes_only")
def test_a_one_token_task_commits_its_events_with_its_end(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """Two commits: the admission, then one for the attempt's start, ``started``, the token,
    ``end`` and the terminal row (the zero-delay engine answers one token without yielding)."""
    server = serve(make_config(pools=[pool("default", replicas=[{"replica_id": "r1"}])]))
    commits: list[str] = []
    lock = threading.Lock()

    def trace(statement: str) -> None:
        if statement == "COMMIT":
            with lock:
                commits.append(statement)

    store = server.app.state.orchestrator.store
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        store._db.set_trace_callback(trace)
        try:
            task_id = client.submit_task(sid, "one token", max_tokens=1).task_id
            wait_until(lambda: client.get_task(task_id).state == "completed")
        finally:
            store._db.set_trace_callback(None)
    assert _stored_events(db_path, task_id) == ["started", "token", "end"]
    assert len(commits) == 2, (
        f"expected 2 commits (admission, then the attempt), saw {len(commits)}"
    )


@pytest.mark.req("ORCH-0059")
def test_a_running_task_shows_its_attempt_before_the_engine_answers(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    """The attempt's start is written lazily; reads of the task and its session still see it."""
    gate = Gate(hold_before=0)  # the engine holds before its first token
    replica = {"replica_id": "r1", "token_delay_ms": 0}
    server = serve(
        make_config(pools=[pool("default", replicas=[replica])]), engine_factory=gate.factory
    )
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "held before its first token", max_tokens=2).task_id
        try:
            assert gate.reached.wait(10), "the engine never started"
            task = client.get_task(task_id)
            assert task.state == "running"
            assert [(a.attempt, a.replica_id, a.state) for a in task.attempts] == [
                (1, "r1", "running")
            ]
            counts = client.get_session(sid).tasks
            assert (counts.queued, counts.running) == (0, 1), counts
        finally:
            gate.open()
        wait_until(lambda: client.get_task(task_id).state == "completed")
        assert [a.state for a in client.get_task(task_id).attempts] == ["completed"]

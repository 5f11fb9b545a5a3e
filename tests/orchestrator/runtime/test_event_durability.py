"""When stream events reach SQLite: before any reader gets them, and a one-token task's
events together with its end.

Spec: ORCH-0169 (durable before visible), ORCH-0142 (recovery must know that a
best_effort task sent tokens), ORCH-0065, ORCH-0170, ORCH-0171.
"""

from __future__ import annotations

import sqlite3
import threading

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.runtime.journal import Journal
from tests.orchestrator.runtime.gated_engine import Gate
from tests.support import ConfigFactory, ServeFactory, pool, wait_until


def _stored_events(db_path: str, task_id: str) -> list[str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT event FROM task_events WHERE task_id = ? ORDER BY seq", (task_id,)
        ).fetchall()
    return [event for (event,) in rows]


@pytest.mark.req("ORCH-0142", "ORCH-0169")
def test_every_event_is_in_the_database_before_a_reader_gets_it(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """Each event is looked up in the database the moment the reader has it."""
    replica = {"replica_id": "r1", "token_delay_ms": 2}
    server = serve(make_config(pools=[pool("default", replicas=[replica])]))
    with OrchClient(server.url) as client, httpx.Client(timeout=30) as http:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "durable tokens", max_tokens=200).task_id
        received = 0
        with http.stream("GET", f"{server.url}/v1/tasks/{task_id}/stream") as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    received = int(line[4:])
                    stored = len(_stored_events(db_path, task_id))
                    assert stored >= received, (
                        f"ORCH-0169: event {received} reached a reader with only {stored} "
                        "events committed"
                    )
        assert received == 202
        wait_until(lambda: client.get_task(task_id).state == "completed")
    assert _stored_events(db_path, task_id) == ["started", *["token"] * 200, "end"]


@pytest.mark.req("ORCH-0169", "ORCH-0170", "ORCH-0171")
def test_a_database_that_cannot_grow_holds_events_back_until_it_can(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """``max_page_count`` makes SQLite answer ``SQLITE_FULL``, a real full database in-process."""
    gate = Gate(hold_before=3)
    replica = {"replica_id": "r1", "token_delay_ms": 0}
    server = serve(
        make_config(pools=[pool("default", replicas=[replica])]), engine_factory=gate.factory
    )
    store = server.app.state.orchestrator.store
    with OrchClient(server.url) as client, httpx.Client(base_url=server.url, timeout=30) as http:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "held back", max_tokens=400).task_id
        assert gate.reached.wait(10)
        wait_until(lambda: client.get_task(task_id).tokens_out == 3)

        def full(limit: int) -> None:
            server.call(lambda: store._connection.execute(f"PRAGMA max_page_count = {limit}"))

        pages = server.call(lambda: store._connection.execute("PRAGMA page_count").fetchone()[0])
        assert isinstance(pages, int)
        full(pages)
        gate.open()
        wait_until(lambda: server.app.state.orchestrator.journal.failing)
        for _ in range(200):  # until a row needs a page the database cannot add
            refused = http.post("/v1/tasks", json={"session_id": sid, "prompt": "x"})
            if refused.status_code != 202:
                break
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["kind"] == "STORAGE_UNAVAILABLE"
        assert client.get_task(task_id).tokens_out < 400  # not all can have been written yet
        full(1_000_000)
        result = client.collect_stream(task_id)
        assert result.end is not None and len(result.tokens) == 400
    assert _stored_events(db_path, task_id) == ["started", *["token"] * 400, "end"]


@pytest.mark.req("ORCH-0065")
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
        store._connection.set_trace_callback(trace)
        try:
            task_id = client.submit_task(sid, "one token", max_tokens=1).task_id
            wait_until(lambda: client.get_task(task_id).state == "completed")
        finally:
            store._connection.set_trace_callback(None)
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


@pytest.mark.req("ORCH-0054", "ORCH-0065")
def test_a_read_that_lands_a_finished_tasks_commit_shows_the_ended_task(
    serve: ServeFactory,
    make_config: ConfigFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The journal's own commits are switched off: only the read commits the outcome."""
    monkeypatch.setattr(Journal, "_schedule", lambda self: None)
    server = serve(make_config(pools=[pool("default", replicas=[{"replica_id": "r1"}])]))
    with OrchClient(server.url) as client, httpx.Client(base_url=server.url) as http:
        sid = client.create_session().session_id
        task_id = client.submit_task(sid, "two tokens", max_tokens=2).task_id
        live = server.app.state.orchestrator.live
        wait_until(lambda: server.call(lambda: live.get(task_id).finished))
        task = http.get(f"/v1/tasks/{task_id}").json()
    assert (task["state"], task["tokens_out"]) == ("completed", 2), task
    assert [a["state"] for a in task["attempts"]] == ["completed"], task

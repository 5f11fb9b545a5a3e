"""Task lifecycle over real HTTP: legal state changes only, terminal state durable before the
closing event, replica slots respected, and no task left queued next to a free slot.

Spec: ORCH-0045, ORCH-0059, ORCH-0060, ORCH-0065, ORCH-0092, ORCH-0093.
"""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.vocabulary import TERMINAL_STATES
from tests.support import ConfigFactory, ServeFactory, pool, wait_until

PATHS = (
    ("queued", "running", "completed"),
    ("queued", "running", "failed"),
    ("queued", "running", "cancelled"),
    ("queued", "cancelled"),
    ("queued", "dropped"),
)
"""Every path ORCH-0059 allows, from admission to the terminal state."""


def is_subsequence(seen: list[str], path: tuple[str, ...]) -> bool:
    it = iter(path)
    return all(state in it for state in seen)


@pytest.mark.req("ORCH-0059", "ORCH-0060")
def test_tasks_change_state_only_along_the_allowed_paths(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    """Every task is polled while it lives: what is seen must fit one allowed path.

    Polling can miss a short-lived state, so the check is "a subsequence of an
    allowed path"; a backwards step, a second terminal state or a dropped task
    that ever ran would not fit any.
    """
    slow = {"replica_id": "r1", "slots": 1, "token_delay_ms": 10}
    faulty = {"replica_id": "f1", "faults": {"fail_after_tokens": 2}}
    config = make_config(
        pools=[
            pool("default", replicas=[slow], queue_capacity=2, overflow_policy="drop_lru"),
            pool("faulty", replicas=[faulty], max_attempts=1),
        ]
    )
    server = serve(config)
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        seen: dict[str, list[str]] = {}

        def submit(prompt: str, **kwargs: Any) -> str:
            admitted = client.submit_task(sid, prompt, **kwargs)
            seen[admitted.task_id] = [admitted.state]
            return admitted.task_id

        def poll() -> None:
            for task_id, states in seen.items():
                state = client.get_task(task_id).state
                if state != states[-1]:
                    states.append(state)

        running = submit("runs then is cancelled", max_tokens=400)
        wait_until(lambda: client.get_task(running).state == "running")
        victim = submit("queued, then dropped", priority="batch", max_tokens=4)
        queued_cancel = submit("queued, then cancelled", max_tokens=4)
        completes = submit("queued, runs, completes", max_tokens=6)  # evicts the batch victim
        fails = submit("fails", pool="faulty", max_tokens=8)
        poll()
        client.cancel_task(queued_cancel)
        poll()
        client.cancel_task(running)
        wait_until(
            lambda: (poll(), all(s[-1] in TERMINAL_STATES for s in seen.values()))[1], timeout=20
        )
        for _ in range(5):  # a terminal state is never left
            poll()

        assert seen[victim][-1] == "dropped"
        assert seen[queued_cancel][-1] == "cancelled"
        assert seen[running][-1] == "cancelled"
        assert seen[completes][-1] == "completed"
        assert seen[fails][-1] == "failed"
        for task_id, states in seen.items():
            assert any(is_subsequence(states, path) for path in PATHS), (
                f"ORCH-0059: task {task_id} changed state along {states}, outside the allowed paths"
            )
        # What polling cannot see, the task record shows: these two never ran.
        for task_id in (victim, queued_cancel):
            task = client.get_task(task_id)
            assert task.started_at is None and task.attempts == [], (
                f"ORCH-0059: {task.state} task {task_id} must come straight from queued"
            )


def _terminal_rows(db_path: str, task_id: str) -> tuple[str, str | None]:
    """The task's stored state and error, read from the SQLite file by another connection."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT state, error FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    if row is None:
        return "absent", None
    return row[0], row[1]


@pytest.mark.req("ORCH-0065")
def test_the_terminal_state_is_durable_before_the_closing_event_is_sent(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """The moment a reader gets ``end`` or ``error``, the database already holds the outcome."""
    replica = {"replica_id": "r1", "slots": 4, "token_delay_ms": 5}
    server = serve(make_config(pools=[pool("default", replicas=[replica])]))
    with OrchClient(server.url) as client, httpx.Client(timeout=30) as http:
        sid = client.create_session().session_id
        for n in range(6):
            cancel = n % 3 == 2
            task_id = client.submit_task(sid, f"durable {n}", max_tokens=200 if cancel else 8)
            task_id = task_id.task_id
            with http.stream("GET", f"{server.url}/v1/tasks/{task_id}/stream") as response:
                for line in response.iter_lines():
                    if cancel and line == "event: token":
                        client.cancel_task(task_id)
                        cancel = False
                    if line in ("event: end", "event: error"):
                        state, error = _terminal_rows(db_path, task_id)
                        expected = "completed" if line == "event: end" else "cancelled"
                        assert state == expected, (
                            f"ORCH-0065: closing event {line!r} sent while the stored task "
                            f"{task_id} is still {state!r}"
                        )
                        if expected == "cancelled":
                            assert error is not None and json.loads(error)["kind"] == "CANCELLED"
                        break
                else:
                    raise AssertionError(f"stream of {task_id} ended without a closing event")


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at once; half-open, so one ending as the next starts is no overlap."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:  # at equal times the -1 (an end) sorts first
        running += step
        peak = max(peak, running)
    return peak


def _stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.req("ORCH-0092")
def test_a_replica_never_runs_more_attempts_than_its_slots(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    replicas = [
        {"replica_id": "r1", "slots": 2, "token_delay_ms": 20},
        {"replica_id": "r2", "slots": 1, "token_delay_ms": 20},
    ]
    slots = {"r1": 2, "r2": 1}
    server = serve(make_config(pools=[pool("default", replicas=replicas)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        with ThreadPoolExecutor(6) as executor:  # a burst, so every slot is wanted at once
            ids = list(
                executor.map(
                    lambda n: client.submit_task(sid, f"slot {n}", max_tokens=8).task_id, range(12)
                )
            )
        peak = dict.fromkeys(slots, 0)

        def sample() -> bool:
            for replica in client.get_pool("default").replicas:
                peak[replica.replica_id] = max(peak[replica.replica_id], replica.in_flight)
            return all(client.get_task(t).state == "completed" for t in ids)

        wait_until(sample, timeout=30, interval=0.005)
        by_replica: dict[str, list[tuple[datetime, datetime]]] = {r: [] for r in slots}
        for task_id in ids:
            for attempt in client.get_task(task_id).attempts:
                assert attempt.finished_at is not None
                by_replica[attempt.replica_id].append(
                    (_stamp(attempt.started_at), _stamp(attempt.finished_at))
                )
    for replica_id, limit in slots.items():
        assert peak[replica_id] <= limit, (
            f"ORCH-0092: {replica_id} reported {peak[replica_id]} in flight with {limit} slots"
        )
        overlap = _max_overlap(by_replica[replica_id])
        assert overlap <= limit, (
            f"ORCH-0092: {replica_id} ran {overlap} attempts at once with {limit} slots"
        )
    assert sum(len(v) for v in by_replica.values()) == len(ids)
    assert _max_overlap(by_replica["r1"]) == 2, "the test never filled r1's two slots"


@pytest.mark.req("ORCH-0093")
def test_no_task_stays_queued_while_a_ready_replica_has_a_free_slot(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    replica = {"replica_id": "r1", "slots": 2, "token_delay_ms": 20}
    server = serve(make_config(pools=[pool("default", replicas=[replica])]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        first, second = (client.submit_task(sid, f"hold {n}", max_tokens=400) for n in (1, 2))
        # Two free slots, two tasks: both are dispatched, none waits.
        wait_until(
            lambda: {client.get_task(t.task_id).state for t in (first, second)} == {"running"},
            timeout=5,
        )
        third = client.submit_task(sid, "waits for a slot", max_tokens=400).task_id
        assert client.get_task(third).state == "queued"
        assert client.get_pool("default").queue_depth.interactive == 1
        # Freeing a slot hands it to the queued task.
        client.cancel_task(first.task_id)
        try:
            wait_until(lambda: client.get_task(third).state == "running", timeout=5)
        except AssertionError:
            raise AssertionError(
                "ORCH-0093: a task stayed queued while replica r1 had a free slot"
            ) from None
        assert client.get_pool("default").queue_depth.interactive == 0
        for task_id in (second.task_id, third):
            client.cancel_task(task_id)


@pytest.mark.req("ORCH-0045")
def test_an_admitted_task_is_in_the_database_when_the_202_arrives(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    """Read the SQLite file itself, from another connection, right after each 202.

    Admissions arriving together share one commit (group commit); each one, fired
    concurrently, must still be committed before its own 202.
    """
    server = serve(make_config())
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id

        def admit_and_look(n: int) -> tuple[str, bool]:
            task_id = client.submit_task(sid, f"durable {n}", max_tokens=2).task_id
            state, _ = _terminal_rows(db_path, task_id)
            return task_id, state in {"queued", "running", "completed"}

        with ThreadPoolExecutor(8) as executor:
            outcomes = list(executor.map(admit_and_look, range(32)))
    missing = [task_id for task_id, stored in outcomes if not stored]
    assert not missing, f"ORCH-0045: answered 202 before committing tasks {missing}"

"""Sessions and tasks over raw HTTP (spec sections 3 and 4): fields, TTL, deletion, cancel, states.

What a client can observe of a resource's life: the fields of each answer, TTL
arithmetic, what a session delete does to its tasks, cancel versus conflict, and
states that only move forward. Checks that need tasks to queue behind a slow
replica start a target of their own (``serve_on_engine``) and skip against
``--orch-url``, never pass.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from harness.checks import orch_check
from harness.engine.control import (
    HOLD_TOKENS,
    ServeOnEngine,
    slow_wire,
)
from harness.wire import TERMINAL_STATES, Wire, expect, expect_error, parse_rfc3339

pytestmark = pytest.mark.contract


SESSION_FIELDS = {"session_id", "ttl_seconds", "created_at", "expires_at", "metadata"}
ADMITTED_FIELDS = {
    "task_id",
    "session_id",
    "state",
    "priority",
    "pool",
    "queue_position",
    "seed",
    "stream_url",
}
TASK_FIELDS = {
    "task_id",
    "session_id",
    "state",
    "priority",
    "pool",
    "max_tokens",
    "params",
    "replica_id",
    "engine",
    "engine_version",
    "tokens_out",
    "finish_reason",
    "error",
    "attempts",
    "created_at",
    "started_at",
    "finished_at",
}


# ---------------------------------------------------------------- 3 sessions


@pytest.mark.req("ORCH-0005", "ORCH-0006", "ORCH-0025", "ORCH-0026", "ORCH-0027", "ORCH-0028")
def test_session_fields_and_ttl_arithmetic(wire: Wire) -> None:
    created = [wire.new_session(), wire.new_session(ttl_seconds=90, metadata={"k": [1, "v"]})]
    for session, ttl, metadata in zip(created, (600, 90), ({}, {"k": [1, "v"]}), strict=True):
        expect(
            set(session) == SESSION_FIELDS,
            f"ORCH-0026: 201 must hold exactly {sorted(SESSION_FIELDS)}; got {sorted(session)}",
        )
        expect(
            session["ttl_seconds"] == ttl and session["metadata"] == metadata,
            f"ORCH-0025: ttl_seconds defaults to 600 and metadata to {{}}; got {session}",
        )
        created_at = parse_rfc3339(session["created_at"], "ORCH-0005", "created_at")
        expires_at = parse_rfc3339(session["expires_at"], "ORCH-0005", "expires_at")
        expect(
            abs((expires_at - created_at).total_seconds() - ttl) < 0.001,
            f"ORCH-0026: expires_at must be created_at + ttl_seconds ({ttl}); got {session}",
        )
        before = time.time()
        response = wire.http.get(f"/v1/sessions/{session['session_id']}")
        after = time.time()
        expect(response.status_code == 200, f"ORCH-0027: GET session: {response.status_code}")
        info = response.json()
        expect(
            set(info) == SESSION_FIELDS | {"ttl_remaining_ms", "tasks"}
            and all(info[k] == session[k] for k in SESSION_FIELDS),
            f"ORCH-0027: GET must answer the creation fields plus ttl_remaining_ms and tasks; "
            f"got {info} for {session}",
        )
        remaining = info["ttl_remaining_ms"]
        left_ms = (expires_at.timestamp() - before) * 1000
        least_ms = (expires_at.timestamp() - after) * 1000
        expect(
            isinstance(remaining, int)
            and not isinstance(remaining, bool)
            and 0 <= remaining <= ttl * 1000
            and least_ms - 2000 <= remaining <= left_ms + 2000,
            f"ORCH-0028: ttl_remaining_ms must be the whole ms left until expires_at "
            f"(about {int(least_ms)}..{int(left_ms)}); got {remaining!r}",
        )
        expect(
            info["tasks"] == {"queued": 0, "running": 0, "terminal": 0},
            f"ORCH-0029: a new session has no tasks; got {info['tasks']}",
        )
    tasks = [wire.admit(str(created[0]["session_id"]), max_tokens=1) for _ in range(3)]
    ids = [s["session_id"] for s in created] + [t["task_id"] for t in tasks]
    expect(len(set(ids)) == len(ids), f"ORCH-0006: IDs must never repeat; got {ids}")


@pytest.mark.req("ORCH-0029", "ORCH-0032")
def test_session_counts_tasks_and_keeps_expires_at(wire: Wire) -> None:
    session = wire.new_session(ttl_seconds=3600)
    session_id = str(session["session_id"])
    done = [wire.admit(session_id, max_tokens=2)["task_id"] for _ in range(2)]
    for task_id in done:
        wire.wait_terminal(task_id)
    info = wire.http.get(f"/v1/sessions/{session_id}").json()
    expect(
        info["tasks"] == {"queued": 0, "running": 0, "terminal": 2},
        f"ORCH-0029: tasks must count the session's 2 finished tasks as terminal; got "
        f"{info['tasks']}",
    )
    expect(
        info["expires_at"] == session["expires_at"],
        f"ORCH-0032: expires_at must not move when reading or admitting; was "
        f"{session['expires_at']}, now {info['expires_at']}",
    )


@pytest.mark.req("ORCH-0030", "ORCH-0046", "ORCH-0058", "ORCH-0119")
def test_unknown_resources_are_404(wire: Wire) -> None:
    ghost = "sess_conformance_never_created"
    for method in ("GET", "DELETE"):
        expect_error(
            wire.http.request(method, f"/v1/sessions/{ghost}"),
            404,
            "NOT_FOUND",
            "ORCH-0030",
            f"{method} of an unknown session",
        )
    expect_error(
        wire.post_json("/v1/tasks", {"session_id": ghost, "prompt": "hello"}),
        404,
        "NOT_FOUND",
        "ORCH-0046",
        "a task for an unknown session",
    )
    session_id = str(wire.new_session()["session_id"])
    expect_error(
        wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "x", "pool": "nopool"}),
        404,
        "NOT_FOUND",
        "ORCH-0046",
        "a task for an unknown pool",
    )
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/stream")):
        expect_error(
            wire.http.request(method, f"/v1/tasks/task_never_created{path}"),
            404,
            "NOT_FOUND",
            "ORCH-0058",
            f"{method} {path or 'task'} of an unknown task",
        )
    expect_error(
        wire.http.get("/v1/pools/nopool"), 404, "NOT_FOUND", "ORCH-0119", "an unknown pool"
    )


@pytest.mark.req("ORCH-0031", "ORCH-0047", "ORCH-0028")
def test_expired_session_is_410(wire: Wire) -> None:
    session = wire.new_session(ttl_seconds=1)
    session_id = str(session["session_id"])
    expires_at = parse_rfc3339(session["expires_at"], "ORCH-0005", "expires_at").timestamp()
    time.sleep(max(0.0, expires_at - time.time()) + 0.3)
    expect_error(
        wire.http.get(f"/v1/sessions/{session_id}"),
        410,
        "SESSION_EXPIRED",
        "ORCH-0031",
        "GET of a session past its expires_at",
    )
    expect_error(
        wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "late"}),
        410,
        "SESSION_EXPIRED",
        "ORCH-0047",
        "a task for an expired session",
    )


@pytest.mark.req("ORCH-0033", "ORCH-0035", "ORCH-0046")
def test_deleted_session_is_gone_but_its_tasks_stay_readable(wire: Wire) -> None:
    session_id = str(wire.new_session()["session_id"])
    task_id = str(wire.admit(session_id, max_tokens=2)["task_id"])
    finished = wire.wait_terminal(task_id)
    response = wire.http.delete(f"/v1/sessions/{session_id}")
    expect(
        response.status_code == 204 and response.content == b"",
        f"ORCH-0033: DELETE of a session must answer 204 with an empty body; got "
        f"{response.status_code} {response.content[:100]!r}",
    )
    for method in ("GET", "DELETE"):
        expect_error(
            wire.http.request(method, f"/v1/sessions/{session_id}"),
            404,
            "NOT_FOUND",
            "ORCH-0033",
            f"{method} of an ended session",
        )
    expect_error(
        wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "x"}),
        404,
        "NOT_FOUND",
        "ORCH-0046",
        "a task for an ended session",
    )
    after = wire.task(task_id)
    expect(
        after["state"] == finished["state"] == "completed",
        f"ORCH-0035: a finished task of an ended session stays readable and unchanged; got "
        f"{after['state']!r}",
    )


@pytest.mark.req("ORCH-0034", "ORCH-0035", "ORCH-0063")
def test_deleting_a_session_cancels_its_queued_and_running_tasks(
    serve_on_engine: ServeOnEngine,
) -> None:
    with slow_wire(serve_on_engine) as wire:
        session_id = str(wire.new_session()["session_id"])
        running = str(wire.admit(session_id, max_tokens=HOLD_TOKENS)["task_id"])
        wire.wait_running(running)
        queued = str(wire.admit(session_id, max_tokens=HOLD_TOKENS)["task_id"])
        expect(
            wire.http.delete(f"/v1/sessions/{session_id}").status_code == 204,
            "ORCH-0033: DELETE of a session must answer 204",
        )
        for task_id, was in ((running, "running"), (queued, "queued")):
            with orch_check("ORCH-0034"):  # a task the delete left running is ORCH-0034's failure
                task = wire.wait_terminal(task_id, timeout=5.0)
            error = task.get("error") or {}
            expect(
                task["state"] == "cancelled" and error.get("kind") == "CANCELLED",
                f"ORCH-0034: ending a session must end its {was} task cancelled with "
                f"CANCELLED; got {task['state']!r} with {task.get('error')}",
            )


# ---------------------------------------------------------------- 4 tasks


@pytest.mark.req(
    "ORCH-0042",
    "ORCH-0044",
    "ORCH-0045",
    "ORCH-0051",
    "ORCH-0052",
    "ORCH-0053",
    "ORCH-0054",
    "ORCH-0055",
    "ORCH-0056",
    "ORCH-0057",
    "ORCH-0061",
    "ORCH-0091",
    "ORCH-0100",
)
def test_admitted_task_fields_through_completion(wire: Wire) -> None:
    session_id = str(wire.new_session()["session_id"])
    for seed in (None, 7):
        body: dict[str, Any] = {"session_id": session_id, "prompt": "fields", "max_tokens": 5}
        if seed is not None:
            body["params"] = {"seed": seed, "determinism": "strict"}
        response = wire.post_json("/v1/tasks", body)
        expect(
            response.status_code == 202,
            f"ORCH-0042: an admitted task answers 202; got {response.status_code}",
        )
        admitted = response.json()
        task_id = admitted.get("task_id")
        expect(
            set(admitted) == ADMITTED_FIELDS
            and admitted["state"] == "queued"
            and admitted["stream_url"] == f"/v1/tasks/{task_id}/stream"
            and response.headers.get("location") == f"/v1/tasks/{task_id}",
            f"ORCH-0042: 202 must hold {sorted(ADMITTED_FIELDS)} with state queued, stream_url "
            f"and Location /v1/tasks/{{id}}; got {admitted}, Location "
            f"{response.headers.get('location')!r}",
        )
        chosen = admitted["seed"]
        expect(
            (chosen == seed) if seed is not None else isinstance(chosen, int) and chosen >= 0,
            f"ORCH-0044: the returned seed must be params.seed ({seed}) or a chosen one; got "
            f"{chosen!r}",
        )
        read = wire.http.get(f"/v1/tasks/{task_id}")
        expect(
            read.status_code == 200,
            f"ORCH-0045: an admitted task is persisted before the 202, so it is readable at "
            f"once; got {read.status_code}",
        )
        task = wire.wait_terminal(str(task_id))
        expect(
            set(task) == TASK_FIELDS,
            f"ORCH-0051: GET task must hold {sorted(TASK_FIELDS)}; got {sorted(task)}",
        )
        params = task["params"]
        expected_params = {
            "seed": chosen,
            "determinism": "strict" if seed is not None else "best_effort",
            "sampler_profile_version": "v1",
            "temperature": 1.0,
            "top_p": 1.0,
        }
        expect(
            params == expected_params,
            f"ORCH-0052: params must be the effective ones with defaults and the seed; got "
            f"{params}, expected {expected_params}",
        )
        expect(
            task["state"] == "completed"
            and task["error"] is None
            and task["finish_reason"] == "length"
            and task["tokens_out"] == 5,
            f"ORCH-0055/ORCH-0061: a task that reached max_tokens completes with "
            f"finish_reason 'length', tokens_out 5 and no error; got {task}",
        )
        attempts = task["attempts"]
        expect(
            bool(attempts)
            and [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
            and task["replica_id"] == attempts[-1]["replica_id"]
            and isinstance(task["engine"], str)
            and isinstance(task["engine_version"], str),
            f"ORCH-0053/ORCH-0100: replica_id/engine/engine_version describe the latest of "
            f"attempts numbered from 1; got {task}",
        )
        for name in ("created_at", "started_at", "finished_at"):
            parse_rfc3339(task[name], "ORCH-0057", f"{name} of a completed task")
        pool = wire.pool(str(task["pool"]))
        replicas = {r["replica_id"] for r in pool["replicas"]}
        expect(
            {a["replica_id"] for a in attempts} <= replicas,
            f"ORCH-0091: a task runs only on replicas of its pool {sorted(replicas)}; got "
            f"{attempts}",
        )


@pytest.mark.req(
    "ORCH-0053",
    "ORCH-0056",
    "ORCH-0057",
    "ORCH-0066",
    "ORCH-0067",
    "ORCH-0068",
    "ORCH-0069",
    "ORCH-0123",
)
def test_queued_and_running_tasks_then_cancel(serve_on_engine: ServeOnEngine) -> None:
    with slow_wire(serve_on_engine) as wire:
        session_id = str(wire.new_session()["session_id"])
        running = str(wire.admit(session_id, max_tokens=HOLD_TOKENS)["task_id"])
        wire.wait_running(running)
        queued = str(wire.admit(session_id, max_tokens=3)["task_id"])
        batch = str(wire.admit(session_id, max_tokens=3, priority="batch")["task_id"])
        waiting = wire.task(queued)
        nulls = (
            "replica_id",
            "engine",
            "engine_version",
            "started_at",
            "finished_at",
            "error",
            "finish_reason",
        )
        expect(
            waiting["state"] == "queued"
            and all(waiting[k] is None for k in nulls)
            and waiting["attempts"] == []
            and waiting["tokens_out"] == 0,
            f"ORCH-0053/ORCH-0056/ORCH-0057: a queued task has null {nulls}, no attempts and "
            f"tokens_out 0; got {waiting}",
        )
        live = wire.task(running)
        expect(
            live["finished_at"] is None and live["error"] is None and live["started_at"],
            f"ORCH-0057: a running task has started_at and a null finished_at; got {live}",
        )
        pool = wire.pool()
        replica = pool["replicas"][0]
        expect(
            pool["queue_depth"] == {"interactive": 1, "batch": 1} and replica["in_flight"] == 1,
            f"ORCH-0123: queue_depth counts queued tasks per priority and in_flight the running "
            f"attempts; got queue_depth {pool['queue_depth']}, in_flight {replica['in_flight']}",
        )
        for task_id, was in ((queued, "queued"), (running, "running")):
            response = wire.http.delete(f"/v1/tasks/{task_id}")
            body = response.json() if response.status_code == 200 else {}
            expect(
                response.status_code == 200
                and body.get("state") == "cancelled"
                and (body.get("error") or {}).get("kind") == "CANCELLED",
                f"ORCH-0066: DELETE of a {was} task ends it cancelled and answers 200 with the "
                f"task; got {response.status_code}: {response.text[:300]}",
            )
        depth = wire.pool()["queue_depth"]
        expect(
            depth["interactive"] == 0,
            f"ORCH-0067: a cancelled queued task leaves the queue at once; queue_depth {depth}",
        )
        stopped = wire.task(running)["tokens_out"]
        time.sleep(0.3)
        later = wire.task(running)
        expect(
            later["tokens_out"] == stopped and later["state"] == "cancelled",
            f"ORCH-0068: decoding stops once a running task is cancelled; tokens_out went "
            f"{stopped} -> {later['tokens_out']}",
        )
        again = wire.http.delete(f"/v1/tasks/{running}")
        expect_error(again, 409, "CONFLICT", "ORCH-0069", "DELETE of a cancelled task")
        expect(
            wire.task(running) == later,
            "ORCH-0069: a refused DELETE must leave the task unchanged",
        )
        wire.http.delete(f"/v1/tasks/{batch}")


@pytest.mark.req("ORCH-0069", "ORCH-0060")
def test_cancelling_a_completed_task_is_409(wire: Wire) -> None:
    task_id = str(wire.admit(max_tokens=2)["task_id"])
    done = wire.wait_terminal(task_id)
    response = wire.http.delete(f"/v1/tasks/{task_id}")
    expect_error(response, 409, "CONFLICT", "ORCH-0069", "DELETE of a completed task")
    after = wire.task(task_id)
    expect(
        after == done,
        f"ORCH-0069/ORCH-0060: a refused DELETE leaves the task in its terminal state; was "
        f"{done['state']!r}, now {after['state']!r}",
    )


LATER_STATES = {
    "queued": {"queued", "running", "completed", "failed", "cancelled", "dropped"},
    "running": {"running", "completed", "failed", "cancelled"},
}
"""ORCH-0059 as polling sees it: the states reachable from each state (polls may skip one)."""


@pytest.mark.req("ORCH-0059", "ORCH-0060")
def test_observed_states_only_move_forward(wire: Wire) -> None:
    session_id = str(wire.new_session()["session_id"])
    ids = [str(wire.admit(session_id, max_tokens=n)["task_id"]) for n in (300, 300, 2)]
    wire.http.delete(f"/v1/tasks/{ids[1]}")
    seen: dict[str, list[str]] = {task_id: ["queued"] for task_id in ids}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for task_id in ids:
            state = str(wire.task(task_id)["state"])
            if state != seen[task_id][-1]:
                seen[task_id].append(state)
        if all(states[-1] in TERMINAL_STATES for states in seen.values()):
            break
        time.sleep(0.005)
    for task_id in ids:
        for _ in range(3):
            state = str(wire.task(task_id)["state"])
            if state != seen[task_id][-1]:
                seen[task_id].append(state)
    for task_id, states in seen.items():
        steps = list(itertools.pairwise(states))
        bad = [(a, b) for a, b in steps if b not in LATER_STATES.get(a, set())]
        expect(
            not bad and states[-1] in TERMINAL_STATES,
            f"ORCH-0059/ORCH-0060: task {task_id} moved {' -> '.join(states)}; states only go "
            "queued -> running -> completed|failed, queued|running -> cancelled, queued -> "
            "dropped, and stay terminal",
        )

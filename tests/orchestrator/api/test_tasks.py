"""Tasks: what orchestratord answers beyond what the conformance suite certifies.

The conformance suite (``harness/conformance/test_contract_lifecycle.py``,
``test_contract_shapes.py``, ``test_contract_queue.py``) certifies every field
set (202, task, params, attempts), the defaults of ``params``, queue positions
per lane and cancel versus conflict; those are not re-tested here. What stays:
the defaults of ``priority``, ``pool`` and ``max_tokens``, a server-picked seed
that varies and reproduces the tokens in strict mode, seeds at the bounds echoed
everywhere, admission into a named pool of several, orchestratord's own values in
a completed task (its mock engine, replicas, timestamps in order, the ``started``
event), and what a cancel leaves behind (attempts, the stream's last event, the
session's counts).

Spec: ORCH-0005, ORCH-0039, ORCH-0040, ORCH-0044, ORCH-0052, ORCH-0053, ORCH-0054,
ORCH-0056, ORCH-0057, ORCH-0063, ORCH-0066, ORCH-0080, ORCH-0082, ORCH-0091, ORCH-0100,
ORCH-0117.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.orchestrator.api.envelope import assert_task_error, read_stream
from tests.orchestrator.wire import (
    HOLD_TOKENS,
    HttpFactory,
    admit,
    get_task,
    new_session,
    slow_pool,
    wait_state,
    wait_terminal,
)
from tests.support import ConfigFactory, ServeFactory, pool


def stamp(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------- POST


@pytest.mark.req("ORCH-0039")
def test_admission_defaults(http: httpx.Client) -> None:
    response = http.post("/v1/tasks", json={"session_id": new_session(http), "prompt": "p"})
    assert response.status_code == 202
    body = response.json()
    assert (body["priority"], body["pool"]) == ("interactive", "default")
    assert get_task(http, body["task_id"])["max_tokens"] == 64


@pytest.mark.req("ORCH-0044", "ORCH-0052", "ORCH-0080")
def test_server_picks_a_seed_when_none_is_given(http: httpx.Client) -> None:
    session_id = new_session(http)
    seeds = []
    for _ in range(5):
        admitted = admit(http, session_id, max_tokens=2)
        seed = admitted["seed"]
        assert isinstance(seed, int)
        assert not isinstance(seed, bool)
        assert 0 <= seed <= 2**63 - 1
        seeds.append(seed)
        assert get_task(http, admitted["task_id"])["params"]["seed"] == seed
        events = read_stream(http, admitted["task_id"])
        started = next(data for _, event, data in events if event == "started")
        assert started["seed"] == seed
        assert events[-1][1] == "end"
        assert events[-1][2]["seed"] == seed
    assert len(set(seeds)) > 1, "the server always picks the same seed"


@pytest.mark.req("ORCH-0044")
def test_a_server_picked_seed_reproduces_the_tokens_in_strict_mode(http: httpx.Client) -> None:
    session_id = new_session(http)
    first = admit(http, session_id, "same prompt", max_tokens=6)
    again = admit(
        http,
        session_id,
        "same prompt",
        max_tokens=6,
        params={"seed": first["seed"], "determinism": "strict"},
    )

    def tokens(task_id: str) -> list[tuple[str, int]]:
        return [
            (d["text"], d["token_id"]) for _, e, d in read_stream(http, task_id) if e == "token"
        ]

    assert tokens(first["task_id"]) == tokens(again["task_id"])


@pytest.mark.parametrize("seed", [0, 1, 2**31, 2**63 - 1])
@pytest.mark.req("ORCH-0040", "ORCH-0044", "ORCH-0052", "ORCH-0080")
def test_a_given_seed_is_echoed_everywhere(http: httpx.Client, seed: int) -> None:
    params = {"seed": seed, "determinism": "strict", "sampler_profile_version": "v1"}
    admitted = admit(http, new_session(http), max_tokens=2, params=params)
    assert admitted["seed"] == seed
    task = wait_terminal(http, admitted["task_id"])
    assert task["params"]["seed"] == seed
    assert task["params"]["determinism"] == "strict"
    events = read_stream(http, admitted["task_id"])
    assert events[0][2]["seed"] == seed
    assert events[-1][2] == {"tokens_out": 2, "finish_reason": "length", "seed": seed}


@pytest.mark.req("ORCH-0039", "ORCH-0091")
def test_tasks_are_admitted_into_the_named_pool(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    replicas = [{"replica_id": "g1"}]
    http = connect(serve(make_config(pools=[pool("default", 1), pool("gpu", replicas)])))
    admitted = admit(http, new_session(http), pool="gpu", max_tokens=2)
    assert admitted["pool"] == "gpu"
    task = wait_terminal(http, admitted["task_id"])
    assert (task["pool"], task["replica_id"]) == ("gpu", "g1")


# ---------------------------------------------------------------- GET


@pytest.mark.req(
    "ORCH-0005", "ORCH-0052", "ORCH-0053", "ORCH-0054", "ORCH-0057", "ORCH-0100", "ORCH-0117"
)
def test_a_completed_task_holds_orchestratords_values(http: httpx.Client) -> None:
    params = {"seed": 11, "temperature": 0.7, "top_p": 0.9, "sampler_profile_version": "v1"}
    admitted = admit(http, new_session(http), max_tokens=5, params=params)
    task = wait_terminal(http, admitted["task_id"])
    assert task["params"] == params | {"determinism": "best_effort"}
    assert task["replica_id"] in {"r1", "r2"}
    assert task["engine"] == "mock"
    assert isinstance(task["engine_version"], str)
    assert task["engine_version"]
    created, started, finished = (
        stamp(task[k]) for k in ("created_at", "started_at", "finished_at")
    )
    assert created <= started <= finished
    (attempt,) = task["attempts"]
    assert (attempt["state"], attempt["error_kind"]) == ("completed", None)
    assert started <= stamp(attempt["started_at"]) <= stamp(attempt["finished_at"]) <= finished
    events = read_stream(http, task["task_id"])
    started_event = events[0][2]
    assert started_event == {
        "task_id": task["task_id"],
        "replica_id": task["replica_id"],
        "engine": task["engine"],
        "engine_version": task["engine_version"],
        "seed": 11,
        "sampler_profile_version": "v1",
    }
    assert len([e for e in events if e[1] == "token"]) == task["tokens_out"]


# ---------------------------------------------------------------- DELETE


@pytest.mark.req(
    "ORCH-0053", "ORCH-0056", "ORCH-0057", "ORCH-0063", "ORCH-0066", "ORCH-0082", "ORCH-0100"
)
def test_cancel_a_running_and_a_queued_task(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool()])))
    session_id = new_session(http)
    running = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    queued = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    live = wait_state(http, running, {"running"})
    assert (live["replica_id"], live["engine"]) == ("r1", "mock")
    (attempt,) = live["attempts"]
    assert (attempt["state"], attempt["finished_at"]) == ("running", None)
    # The queued one first: cancelling the running one would hand it the freed slot.
    for task_id, attempts in ((queued, []), (running, ["cancelled"])):
        response = http.delete(f"/v1/tasks/{task_id}")
        assert response.status_code == 200
        task = response.json()
        assert task["state"] == "cancelled"
        assert_task_error(task["error"], "CANCELLED")
        assert task["finished_at"] is not None
        assert [a["state"] for a in task["attempts"]] == attempts
        assert get_task(http, task_id) == task
        assert read_stream(http, task_id)[-1][1] == "error"
    assert http.get(f"/v1/sessions/{session_id}").json()["tasks"]["terminal"] == 2

"""Provider states: a setup the server under test breaks fails at once, naming the requirement.

The pact verifier retries a state change answered with a 5xx, 429 or 408 seven
times with doubling pauses (about two minutes) and reruns the setup each time;
these tests pin the answer the verifier does not retry, and what it says.
"""

from __future__ import annotations

import httpx
import pytest

from harness.engine.control import EngineControl
from harness.pact.states import serve_group, state_server
from harness.plugin.target import ServeFactory, Target
from orchestrator.client import OrchError
from tests.harness.pact.pact_mutants import json_body_mutant, rename_field

pytestmark = pytest.mark.contract

_VERIFIER_RETRIES = frozenset({408, 429}) | frozenset(range(500, 600))
"""State-change answers the pact verifier retries (and reruns the setup for)."""


def _renamed_stream_url(orch_serve: ServeFactory, engine: EngineControl) -> Target:
    mutant = json_body_mutant("POST", "/v1/tasks", rename_field("stream_url", "events_url"))
    return serve_group("constrained", orch_serve, engine, wrap_app=mutant)


def _setup(url: str, state: str) -> httpx.Response:
    change = {"state": state, "params": {}, "action": "setup"}
    return httpx.post(url, json=change, timeout=30.0)


def test_a_setup_the_answer_breaks_fails_once_naming_the_requirement(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    target = _renamed_stream_url(orch_serve, orch_engine)
    with state_server(target.client) as states:
        answer = _setup(states.url, "a running task exists")
    assert 400 <= answer.status_code < 500, answer.status_code
    assert answer.status_code not in _VERIFIER_RETRIES, (
        f"a failed setup answered {answer.status_code}: the verifier retries it for ~2 minutes"
    )
    error = answer.json()["error"]
    assert error.startswith("ORCH-0042: provider state 'a running task exists' failed: ")
    assert "stream_url" in error
    assert [failure.requirements for failure in states.failures] == [("ORCH-0042",)]


def test_a_failed_setup_deletes_what_it_made(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    """Without cleanup the first admitted task would run on the stalled replica, the second
    would queue and the third be refused (429): every attempt must meet an empty pool."""
    target = _renamed_stream_url(orch_serve, orch_engine)
    with state_server(target.client) as states:
        errors = [_setup(states.url, "a running task exists").json()["error"] for _ in range(3)]
    assert all(error.startswith("ORCH-0042: ") for error in errors), errors
    with target.client() as client:
        depth = client.get_pool("default").queue_depth
    assert depth.interactive + depth.batch == 0


def test_an_unknown_state_is_refused_without_a_retry(orch_serve: ServeFactory) -> None:
    target = orch_serve()
    with state_server(target.client) as states:
        answer = _setup(states.url, "a unicorn exists")
    assert answer.status_code not in _VERIFIER_RETRIES
    assert "unknown provider state 'a unicorn exists'" in answer.json()["error"]


def test_a_run_state_the_answer_breaks_fails_naming_the_requirement_and_cleans_up(
    orch_serve: ServeFactory,
) -> None:
    """A run created with its ``run_id`` renamed: the state fails once, naming ORCH-0317, and
    the session it made is deleted."""
    mutant = json_body_mutant("POST", "/v1/runs", rename_field("run_id", "id"))
    target = orch_serve(wrap_app=mutant)
    with state_server(target.client) as states:
        answer = _setup(states.url, "a completed run exists")
    assert 400 <= answer.status_code < 500 and answer.status_code not in _VERIFIER_RETRIES
    error = answer.json()["error"]
    assert error.startswith("ORCH-0317: provider state 'a completed run exists' failed: "), error
    assert [failure.requirements for failure in states.failures] == [("ORCH-0317",)]
    with target.client() as client:
        (run,) = client.list_runs().runs
        with pytest.raises(OrchError) as gone:
            client.get_session(run.session_id)
    assert gone.value.kind == "NOT_FOUND", gone.value

"""Strict determinism across a replica reset: the retry replays, the stream continues seamlessly.

Spec: ORCH-0053, ORCH-0078, ORCH-0083, ORCH-0104, ORCH-0106, ORCH-0107, ORCH-0108.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.orchestrator.faults.faultkit import (
    Orch,
    Run,
    assert_slots_free,
    attempt_rows,
    mock_tokens,
)
from tests.support import pool

PROMPT = "continue where the dead replica stopped"
SEED = 4242
MAX_TOKENS = 12
FAIL_AFTER = 5
MAX_TRIES = 4
"""Sequential tasks to submit until one starts on the faulty replica (routing rotates)."""

StartOrch = Callable[..., Orch]


def first_run_on_r1(o: Orch, **submit: object) -> Run:
    """Submit the same task until its first attempt lands on r1 (bounded)."""
    runs: list[Run] = []
    for _ in range(MAX_TRIES):
        run = o.run(PROMPT, pool="faulty", **submit)  # type: ignore[arg-type]
        runs.append(run)
        if run.task.attempts and run.task.attempts[0].replica_id == "r1":
            return run
        # Started on the healthy r2: an undisturbed run, which must simply complete.
        assert attempt_rows(run.task) == [(1, "r2", "completed", None)]
    raise AssertionError(
        f"no task started on r1 in {MAX_TRIES} tries: {[attempt_rows(r.task) for r in runs]}"
    )


@pytest.mark.req("ORCH-0053", "ORCH-0078", "ORCH-0083", "ORCH-0104", "ORCH-0106")
def test_strict_retry_continues_the_stream_seamlessly(orch: StartOrch) -> None:
    o = orch(
        pool(
            "faulty",
            replicas=[
                {"replica_id": "r1", "faults": {"fail_after_tokens": FAIL_AFTER}},
                {"replica_id": "r2"},
            ],
            max_attempts=2,
        ),
        pool("healthy", replicas=[{"replica_id": "h1"}]),
    )
    reference = o.run(
        PROMPT, pool="healthy", max_tokens=MAX_TOKENS, seed=SEED, determinism="strict"
    )
    assert reference.terminal.event == "end"
    assert len(reference.tokens) == MAX_TOKENS
    assert reference.tokens == [
        (t.index, t.text, t.token_id) for t in mock_tokens(PROMPT, SEED, MAX_TOKENS)
    ]

    run = first_run_on_r1(o, max_tokens=MAX_TOKENS, seed=SEED, determinism="strict")

    # check_stream (in o.run) already proved: ids 1..n, one started, indices 0..n-1, one terminal.
    assert run.terminal.event == "end", run.terminal
    assert run.terminal.data == {"tokens_out": MAX_TOKENS, "finish_reason": "length", "seed": SEED}
    assert run.kinds == ["started"] + ["token"] * MAX_TOKENS + ["end"]
    assert run.tokens == reference.tokens, "the retry must reproduce the undisturbed stream"
    started = run.events[0].data
    assert started["replica_id"] == "r1"
    assert started["seed"] == SEED
    task = run.task
    assert task.state == "completed"
    assert task.error is None
    assert task.tokens_out == MAX_TOKENS
    assert task.finish_reason == "length"
    assert task.replica_id == "r2", "the task row names the replica that finished it"
    assert attempt_rows(task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "completed", None),
    ]
    # A resumed reader after the reset sees the same tokens, no duplicate and no gap.
    resumed = o.client.collect_stream(run.task_id, last_event_id=1 + FAIL_AFTER)
    assert [t.index for t in resumed.tokens] == list(range(FAIL_AFTER, MAX_TOKENS))
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0107")
def test_strict_retry_on_a_nondeterministic_replica_fails_as_diverged(orch: StartOrch) -> None:
    o = orch(
        pool(
            "faulty",
            replicas=[
                {"replica_id": "r1", "faults": {"fail_after_tokens": FAIL_AFTER}},
                {"replica_id": "r2", "faults": {"nondeterministic": True}},
            ],
            max_attempts=3,
        )
    )

    run = first_run_on_r1(o, max_tokens=MAX_TOKENS, seed=SEED, determinism="strict")

    assert run.terminal.event == "error"
    assert run.terminal.data["kind"] == "WORKER_RESET"
    assert run.terminal.data["retriable"] is True
    assert "diverged" in run.terminal.data["message"]
    expected = [(t.index, t.text, t.token_id) for t in mock_tokens(PROMPT, SEED, FAIL_AFTER)]
    assert run.tokens == expected, "only r1's tokens were sent; r2's divergent ones never were"
    task = run.task
    assert task.state == "failed"
    assert task.error is not None and "diverged" in task.error.message
    assert task.tokens_out == FAIL_AFTER
    # A divergence is terminal: max_attempts 3 leaves room, yet no third attempt runs.
    assert attempt_rows(task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "failed", "WORKER_RESET"),
    ]
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0108")
def test_best_effort_reset_after_tokens_is_not_replayed(orch: StartOrch) -> None:
    o = orch(
        pool(
            "faulty",
            replicas=[
                {"replica_id": "r1", "faults": {"fail_after_tokens": FAIL_AFTER}},
                {"replica_id": "r2"},
            ],
            max_attempts=2,
        )
    )

    run = first_run_on_r1(o, max_tokens=MAX_TOKENS, seed=SEED, determinism="best_effort")

    assert run.kinds == ["started"] + ["token"] * FAIL_AFTER + ["error"]
    assert run.terminal.data["kind"] == "WORKER_RESET"
    assert attempt_rows(run.task) == [(1, "r1", "failed", "WORKER_RESET")]
    assert_slots_free(o.client)

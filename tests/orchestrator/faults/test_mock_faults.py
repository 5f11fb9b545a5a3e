"""Every fault knob of the mock engine, driven to its terminal error over real HTTP.

Each test checks the four places a failure shows: the task (state, error kind
and retriability), its attempts[] rows, the stream's one terminal event, and
the pool's slots afterwards.

Spec: ORCH-0020, ORCH-0021, ORCH-0023, ORCH-0049, ORCH-0050, ORCH-0062, ORCH-0078,
ORCH-0100, ORCH-0101, ORCH-0102, ORCH-0103, ORCH-0104, ORCH-0105, ORCH-0106, ORCH-0108,
ORCH-0109, ORCH-0111, ORCH-0112, ORCH-0122.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.client import OrchError
from tests.orchestrator.faults.faultkit import Orch, assert_slots_free, attempt_rows, mock_tokens
from tests.support import pool

PROMPT = "fault tolerance"
SEED = 7

StartOrch = Callable[..., Orch]


def faulty(*faults: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A pool ``default`` of mock replicas r1..rN with these fault knobs."""
    return pool(
        "default",
        replicas=[{"replica_id": f"r{i + 1}", "faults": f} for i, f in enumerate(faults)],
        **keys,
    )


def assert_error(run_terminal_data: dict[str, Any], kind: str, retriable: bool = True) -> None:
    assert run_terminal_data["kind"] == kind, run_terminal_data
    assert run_terminal_data["retriable"] is retriable
    assert run_terminal_data["message"]


# ---------------------------------------------------------------- fail_after_tokens


@pytest.mark.req(
    "ORCH-0020",
    "ORCH-0062",
    "ORCH-0078",
    "ORCH-0100",
    "ORCH-0101",
    "ORCH-0102",
    "ORCH-0104",
    "ORCH-0105",
    "ORCH-0106",
)
def test_reset_on_every_replica_exhausts_strict_attempts(orch: StartOrch) -> None:
    o = orch(faulty({"fail_after_tokens": 3}, {"fail_after_tokens": 3}, max_attempts=3))

    run = o.run(PROMPT, max_tokens=8, seed=SEED, determinism="strict")

    assert run.terminal.event == "error"
    assert_error(run.terminal.data, "REPLICA_EXHAUSTED")
    assert "all 3 attempts failed" in run.terminal.data["message"]
    # Each strict retry reproduced the 3 tokens already sent without re-sending them.
    expected = [(t.index, t.text, t.token_id) for t in mock_tokens(PROMPT, SEED, 3)]
    assert run.tokens == expected
    assert run.kinds == ["started", "token", "token", "token", "error"]
    task = run.task
    assert task.state == "failed"
    assert task.error is not None
    assert task.error.model_dump() == run.terminal.data
    assert task.tokens_out == 3
    assert task.finish_reason is None
    rows = attempt_rows(task)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert all(r[2:] == ("failed", "WORKER_RESET") for r in rows), rows
    assert {rows[0][1], rows[1][1]} == {"r1", "r2"}, "the first retry must avoid the failed replica"
    assert all(a.finished_at is not None for a in task.attempts)
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0062", "ORCH-0108")
def test_reset_after_tokens_ends_a_best_effort_task_after_one_attempt(orch: StartOrch) -> None:
    o = orch(faulty({"fail_after_tokens": 3}, {"fail_after_tokens": 3}, max_attempts=3))

    run = o.run(PROMPT, max_tokens=8, seed=SEED, determinism="best_effort")

    assert run.terminal.event == "error"
    assert_error(run.terminal.data, "WORKER_RESET")
    assert "3 tokens were already sent" in run.terminal.data["message"]
    assert run.kinds == ["started", "token", "token", "token", "error"]
    task = run.task
    assert task.state == "failed"
    assert task.error is not None and task.error.kind == "WORKER_RESET"
    rows = attempt_rows(task)
    assert len(rows) == 1, "best_effort tokens were sent: no retry may follow"
    assert rows[0][2:] == ("failed", "WORKER_RESET")
    assert rows[0][1] == run.events[0].data["replica_id"]
    assert_slots_free(o.client)


@pytest.mark.parametrize("determinism", ["best_effort", "strict"])
@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0104")
def test_reset_before_any_token_is_retried_until_exhausted(
    orch: StartOrch, determinism: str
) -> None:
    o = orch(faulty({"fail_after_tokens": 0}, {"fail_after_tokens": 0}, max_attempts=2))

    run = o.run(PROMPT, max_tokens=8, seed=SEED, determinism=determinism)

    assert run.kinds == ["error"], "nothing was generated: no started, no token"
    assert_error(run.terminal.data, "REPLICA_EXHAUSTED")
    task = run.task
    assert task.state == "failed"
    assert task.tokens_out == 0
    rows = attempt_rows(task)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (1, "failed", "WORKER_RESET"),
        (2, "failed", "WORKER_RESET"),
    ]
    assert {r[1] for r in rows} == {"r1", "r2"}
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0101", "ORCH-0102")
def test_single_attempt_pool_does_not_retry(orch: StartOrch) -> None:
    o = orch(faulty({"fail_after_tokens": 0}, {}, max_attempts=1))

    run = o.run(PROMPT, max_tokens=4, seed=SEED, determinism="strict")

    if run.terminal.event == "end":  # landed on the healthy replica; try the next one
        run = o.run(PROMPT, max_tokens=4, seed=SEED, determinism="strict")
    assert run.terminal.event == "error"
    assert_error(run.terminal.data, "REPLICA_EXHAUSTED")
    assert attempt_rows(run.task) == [(1, "r1", "failed", "WORKER_RESET")]


# ---------------------------------------------------------------- stall_after_tokens


@pytest.mark.parametrize("determinism", ["best_effort", "strict"])
@pytest.mark.req("ORCH-0111", "ORCH-0112")
def test_stall_ends_in_decode_timeout_without_retry(orch: StartOrch, determinism: str) -> None:
    o = orch(
        faulty(
            {"stall_after_tokens": 2},
            {"stall_after_tokens": 2},
            max_attempts=3,
            decode_timeout_ms=200,
        )
    )

    run = o.run(PROMPT, max_tokens=8, seed=SEED, determinism=determinism)

    assert run.kinds == ["started", "token", "token", "error"]
    assert_error(run.terminal.data, "DECODE_TIMEOUT")
    assert "200 ms" in run.terminal.data["message"]
    task = run.task
    assert task.state == "failed"
    assert task.error is not None and task.error.kind == "DECODE_TIMEOUT"
    assert task.tokens_out == 2
    rows = attempt_rows(task)
    assert len(rows) == 1, f"a decode timeout is not retried: {rows}"
    assert rows[0][2:] == ("failed", "DECODE_TIMEOUT")
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0111", "ORCH-0112")
def test_stall_before_the_first_token_times_out_too(orch: StartOrch) -> None:
    o = orch(faulty({"stall_after_tokens": 0}, max_attempts=2, decode_timeout_ms=200))

    run = o.run(PROMPT, max_tokens=8, seed=SEED)

    assert run.kinds == ["error"]
    assert_error(run.terminal.data, "DECODE_TIMEOUT")
    assert attempt_rows(run.task) == [(1, "r1", "failed", "DECODE_TIMEOUT")]
    assert_slots_free(o.client)


# ---------------------------------------------------------------- rate_limit


@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0109")
def test_rate_limit_everywhere_exhausts_attempts_across_replicas(orch: StartOrch) -> None:
    # aggressive_fallback (the default) ignores the engine's Retry-After: 30 s here.
    limited = {"rate_limit": True, "rate_limit_retry_after_s": 30.0}
    o = orch(faulty(limited, limited, max_attempts=3))

    run = o.run(PROMPT, max_tokens=8, seed=SEED, determinism="strict")

    assert run.kinds == ["error"]
    assert_error(run.terminal.data, "REPLICA_EXHAUSTED")
    assert "rate limited" in run.terminal.data["message"]
    task = run.task
    assert task.state == "failed"
    rows = attempt_rows(task)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (n, "failed", "ENGINE_RATE_LIMITED") for n in (1, 2, 3)
    ]
    assert rows[0][1] != rows[1][1], "aggressive_fallback moves the retry to another replica"
    assert_slots_free(o.client)


def test_rate_limit_everywhere_with_pacing_retries_the_same_replica(orch: StartOrch) -> None:
    limited = {"rate_limit": True, "rate_limit_retry_after_s": 0.05}
    o = orch(faulty(limited, limited, max_attempts=3), fallback_mode="intelligent_pacing")

    run = o.run(PROMPT, max_tokens=8, seed=SEED)

    assert run.kinds == ["error"]
    assert_error(run.terminal.data, "REPLICA_EXHAUSTED")
    rows = attempt_rows(run.task)
    assert [r[3] for r in rows] == ["ENGINE_RATE_LIMITED"] * 3
    assert len({r[1] for r in rows}) == 1, f"pacing prefers the same replica: {rows}"
    assert_slots_free(o.client)


# ---------------------------------------------------------------- unavailable


@pytest.mark.req("ORCH-0021", "ORCH-0023", "ORCH-0049", "ORCH-0050", "ORCH-0122")
def test_no_available_replica_refuses_admission(orch: StartOrch) -> None:
    o = orch(faulty({"unavailable": True}, {"unavailable": True}))

    view = o.client.get_pool("default")
    assert view.ready is False
    assert {r.replica_id: r.state for r in view.replicas} == {"r1": "down", "r2": "down"}

    with pytest.raises(OrchError) as info:
        o.submit(PROMPT, max_tokens=4)

    error = info.value
    assert error.status == 503
    assert error.kind == "POOL_UNAVAILABLE"
    assert error.retriable is True
    assert error.retry_after is not None and error.retry_after >= 1
    assert error.backoff_ms is not None and error.backoff_ms >= 1
    assert error.retry_after == math.ceil(error.backoff_ms / 1000)
    # Nothing was admitted: no queued task, no task counted on the session.
    view = o.client.get_pool("default")
    assert (view.queue_depth.interactive, view.queue_depth.batch) == (0, 0)
    counts = o.client.get_session(o.session_id).tasks
    assert (counts.queued, counts.running, counts.terminal) == (0, 0, 0)


@pytest.mark.req("ORCH-0103")
def test_one_unavailable_replica_is_routed_around(orch: StartOrch) -> None:
    o = orch(faulty({"unavailable": True}, {}, max_attempts=1))

    assert {r.replica_id: r.state for r in o.client.get_pool("default").replicas} == {
        "r1": "down",
        "r2": "ready",
    }
    for _ in range(3):
        run = o.run(PROMPT, max_tokens=4, seed=SEED)
        assert run.terminal.event == "end"
        assert attempt_rows(run.task) == [(1, "r2", "completed", None)]
    assert_slots_free(o.client)

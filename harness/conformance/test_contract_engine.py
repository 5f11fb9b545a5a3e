"""Engine-side failures (spec sections 2 and 7) and cancellation, through the harness's engine.

The target's replicas are ``openai`` replicas of the harness's own engine
(``orchq engine serve --model mock``: an OpenAI-compatible server with a known
token function, per-replica fault rules and a ledger of what it generated).
Any orchestrator that talks to OpenAI-compatible engines can be configured so
(spec section 11: ``engine: openai``, ``base_url``, ``model: mock``); the
harness then makes an engine die mid-stream, hang, refuse with 429, and reads
from the engine's own ledger what the orchestrator made it do: how many
requests (attempts) it sent, with which parameters, and whether it hung up
when it had to.

Each test selects its faults with a marker only its prompts carry, and looks
only at the outcome over HTTP (task, attempts, stream) and at the engine's
ledger, never at the orchestrator's internals. The checks need a target the
harness configures (``orch_serve``) and skip against ``--orch-url``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from harness.engine.control import EngineControl, ServeOnEngine, rule, unique_tag
from harness.engine.mock import expected_tokens
from harness.wire import expect, parse_rfc3339, read_stream
from harness.wire.faulty import engine_calls, faulty_task, stream_error, task_error

pytestmark = pytest.mark.contract

SLOW_TOKEN_MS = 100
"""Decode speed of a task the test acts on while it runs."""
IN_FLIGHT_TOKENS = 2
"""Tokens an engine may still generate after a cancel was acknowledged: the one being
decoded, and one more while the server's hang-up reaches the engine."""


def _ms(stamp: Any) -> float:
    value: datetime = parse_rfc3339(stamp, "ORCH-0005", "an attempt timestamp")
    return value.timestamp() * 1000


# ---------------------------------------------------------------- 7.2 replica failure


@pytest.mark.req("ORCH-0108", "ORCH-0062", "ORCH-0082", "ORCH-0100", "ORCH-0020")
def test_engine_dying_after_tokens_fails_a_best_effort_task_with_worker_reset(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    run = faulty_task(
        serve_on_engine,
        orch_engine,
        {"die_after_tokens": 3},
        {"max_attempts": 2},
        max_tokens=12,
        req="ORCH-0108",
        seed=5,
    )
    task = run.task
    task_error(task, "WORKER_RESET", "ORCH-0108")
    tokens = stream_error(run.wire, task, "WORKER_RESET", "ORCH-0082")
    expect(
        tokens == expected_tokens(run.prompt, 5, 12)[:3],
        f"ORCH-0108: the task streams the 3 tokens its engine generated before dying; got {tokens}",
    )
    calls = engine_calls(orch_engine, run.tag)
    expect(
        len(calls) == 1 and len(task["attempts"]) == 1,
        f"ORCH-0108: a best_effort task that already streamed is not retried; the engine got "
        f"{len(calls)} request(s), the task lists {len(task['attempts'])} attempt(s)",
    )


@pytest.mark.req("ORCH-0104", "ORCH-0105", "ORCH-0106", "ORCH-0078", "ORCH-0113")
def test_strict_task_outlives_a_dying_engine_with_the_known_tokens(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    tag = unique_tag()
    prompt = f"{tag} strict"
    orch_engine.set_faults([rule({"die_after_tokens": 4}, prompt_contains=tag, times=1)])
    wire = serve_on_engine({"max_attempts": 2})
    admitted = wire.admit(
        prompt=prompt, max_tokens=10, params={"seed": 77, "determinism": "strict"}
    )
    task_id = str(admitted["task_id"])
    capture = read_stream(wire, task_id)
    problems = capture.format_problems()
    expect(not problems, "stream of a retried strict task: " + "; ".join(problems))
    task = wire.task(task_id)
    expect(
        task["state"] == "completed",
        f"ORCH-0104: a strict task whose replica died is retried and completes; got "
        f"{task['state']!r} {task.get('error')}",
    )
    indices = [e.data["index"] for e in capture.tokens()]
    expect(
        indices == list(range(10)),
        "ORCH-0078: token indices across the retry must be 0..9 once each (ORCH-0106: the "
        f"retry continues without repeating a token); got {indices}",
    )
    tokens = [(e.data["text"], e.data["token_id"]) for e in capture.tokens()]
    expect(
        tokens == expected_tokens(prompt, 77, 10),
        "ORCH-0106: the retried strict stream must be exactly the engine's tokens for the task's "
        f"prompt and seed (ORCH-0113); got {tokens}",
    )
    calls = engine_calls(orch_engine, tag)
    replicas = [call.replica for call in calls]
    expect(
        len(calls) == 2 and len(task["attempts"]) == 2,
        f"ORCH-0104: one retry after the engine died: the engine got {len(calls)} request(s) "
        f"({replicas}), the task lists {len(task['attempts'])} attempt(s)",
    )
    expect(
        replicas[0] != replicas[1],
        f"ORCH-0105: the retry should go to the other (ready) replica; both went to {replicas[0]}",
    )


@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0062", "ORCH-0104", "ORCH-0020")
def test_engine_dying_on_every_attempt_ends_replica_exhausted(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    run = faulty_task(
        serve_on_engine,
        orch_engine,
        {"die_after_tokens": 0},
        {"max_attempts": 3},
        replicas=("r1", "r2", "r3"),
        req="ORCH-0102",
        seed=1,
    )
    task = run.task
    task_error(task, "REPLICA_EXHAUSTED", "ORCH-0102")
    stream_error(run.wire, task, "REPLICA_EXHAUSTED", "ORCH-0082")
    calls = engine_calls(orch_engine, run.tag)
    expect(
        len(calls) == 3 and len(task["attempts"]) == 3,
        f"ORCH-0101: a task with no token sent is retried (ORCH-0104) up to max_attempts (3) "
        f"and no further; the engine got {len(calls)} request(s), the task lists "
        f"{len(task['attempts'])} attempt(s)",
    )


@pytest.mark.req("ORCH-0151", "ORCH-0104", "ORCH-0105")
def test_engine_refusing_a_request_is_an_attempt_error_and_the_task_moves_on(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    # the task's first request, whichever replica gets it, meets an engine that answers 503
    run = faulty_task(
        serve_on_engine,
        orch_engine,
        {"unavailable": True},
        {"max_attempts": 2},
        times=1,
        max_tokens=4,
        req="ORCH-0104",
        seed=6,
    )
    task = run.task
    attempts = task["attempts"]
    expect(
        task["state"] == "completed" and len(attempts) == 2,
        f"ORCH-0104: a task whose engine refused it before any token is retried and completes; "
        f"got {task['state']!r} {task.get('error')} with attempts {attempts}",
    )
    expect(
        attempts[0]["error_kind"] == "ENGINE_UNAVAILABLE",
        f"ORCH-0151: the attempt the engine refused has error_kind ENGINE_UNAVAILABLE; got "
        f"{attempts[0]}",
    )
    expect(
        attempts[0]["replica_id"] != attempts[1]["replica_id"],
        f"ORCH-0105: the retry should go to the other (ready) replica; got {attempts}",
    )
    calls = engine_calls(orch_engine, run.tag)
    expect(
        [call.status for call in calls] == [503, 200] and calls[1].generated == 4,
        f"ORCH-0104: the engine must see the refused request, then the retry that generates "
        f"the task's 4 tokens; it saw {[(c.replica, c.status, c.generated) for c in calls]}",
    )


# ---------------------------------------------------------------- 7.4 decode timeout


@pytest.mark.req("ORCH-0111", "ORCH-0112", "ORCH-0062", "ORCH-0068", "ORCH-0020")
def test_hanging_engine_ends_decode_timeout_without_retry_and_is_hung_up_on(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    # Long enough that a loaded machine still delivers the request and its first tokens to
    # the engine before the timeout: the hang, not the machine, must cause it.
    pool_keys = {"max_attempts": 2, "decode_timeout_ms": 2000}
    faults = {"hang_after_tokens": 2}
    run = faulty_task(
        serve_on_engine, orch_engine, faults, pool_keys, max_tokens=8, req="ORCH-0111", seed=3
    )
    task = run.task
    task_error(task, "DECODE_TIMEOUT", "ORCH-0111")
    stream_error(run.wire, task, "DECODE_TIMEOUT", "ORCH-0082")
    calls = engine_calls(orch_engine, run.tag)
    expect(
        len(calls) == 1 and len(task["attempts"]) == 1,
        f"ORCH-0112: no retry after a decode timeout; the engine got {len(calls)} request(s), "
        f"the task lists {len(task['attempts'])} attempt(s)",
    )
    expect(
        calls[0].finished,
        f"ORCH-0068: the timed-out attempt's engine request must be closed by the server; the "
        f"engine still holds it ({calls[0].state}) 10 s after the task ended",
    )


# ---------------------------------------------------------------- 7.3 engine rate limits


def _rate_limited_once(
    serve_on_engine: ServeOnEngine, engine: EngineControl, mode: str, retry_after_s: int, req: str
) -> tuple[list[dict[str, Any]], float]:
    """A task whose first engine request, on whichever replica, gets a 429 with
    ``Retry-After: retry_after_s``: its two attempts, and the gap between them in ms."""
    faults = {"rate_limit_retry_after_s": retry_after_s}
    pool_keys = {"max_attempts": 2}
    config = {"fallback_mode": mode}
    task = faulty_task(
        serve_on_engine, engine, faults, pool_keys, times=1, config=config, req=req, seed=4
    ).task
    attempts: list[dict[str, Any]] = task["attempts"]
    expect(
        task["state"] == "completed" and len(attempts) == 2,
        f"{req}: after one engine 429 in {mode} the task is attempted again and completes; got "
        f"{task['state']!r} with attempts {attempts}",
    )
    expect(
        attempts[0]["error_kind"] == "ENGINE_RATE_LIMITED",
        "ORCH-0151: the rate-limited attempt's error_kind is ENGINE_RATE_LIMITED; got "
        f"{attempts[0]}",
    )
    return attempts, _ms(attempts[1]["started_at"]) - _ms(attempts[0]["finished_at"])


@pytest.mark.req("ORCH-0109", "ORCH-0151")
def test_engine_429_in_aggressive_fallback_switches_replica_at_once(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    attempts, gap_ms = _rate_limited_once(
        serve_on_engine, orch_engine, "aggressive_fallback", 30, "ORCH-0109"
    )
    expect(
        attempts[1]["replica_id"] != attempts[0]["replica_id"] and gap_ms < 29_000,
        f"ORCH-0109: in aggressive_fallback the next attempt starts at once on another replica, "
        f"not after the engine's Retry-After (30 s); got {attempts}",
    )


@pytest.mark.req("ORCH-0110", "ORCH-0151")
def test_engine_429_in_intelligent_pacing_waits_the_engines_retry_after(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    _, gap_ms = _rate_limited_once(
        serve_on_engine, orch_engine, "intelligent_pacing", 1, "ORCH-0110"
    )
    expect(
        gap_ms >= 990,
        f"ORCH-0110: in intelligent_pacing the next attempt waits at least the engine's "
        f"Retry-After (1 s); it came after {gap_ms:.0f} ms",
    )


# ---------------------------------------------------------------- 4.6 cancelling a running task


@pytest.mark.req("ORCH-0066", "ORCH-0068", "ORCH-0093")
def test_cancel_stops_the_engine_and_frees_the_slot(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    tag = unique_tag()
    orch_engine.set_faults([rule({"token_delay_ms": SLOW_TOKEN_MS}, prompt_contains=tag)])
    wire = serve_on_engine({"max_attempts": 1}, replicas=("r1",))
    session = str(wire.new_session()["session_id"])
    long_prompt = f"{tag} long"
    task_id = str(
        wire.admit(session, prompt=long_prompt, max_tokens=4096, params={"seed": 8})["task_id"]
    )
    read_stream(wire, task_id, on_event=lambda e: e.event == "token" and e.data["index"] >= 2)
    cancelled = wire.http.delete(f"/v1/tasks/{task_id}")
    expect(
        cancelled.status_code == 200 and cancelled.json().get("state") == "cancelled",
        f"ORCH-0066: DELETE of a running task answers 200 with the cancelled task; got "
        f"{cancelled.status_code}: {cancelled.text[:200]}",
    )
    at_ack = orch_engine.generated(long_prompt)
    calls = orch_engine.wait_finished(long_prompt, timeout=5.0)
    after = sum(call.generated for call in calls)
    expect(
        all(call.finished for call in calls),
        f"ORCH-0068: the engine is still decoding the cancelled task 5 s after the cancel was "
        f"acknowledged ({after - at_ack} more tokens generated since, {after} in all)",
    )
    expect(
        after - at_ack <= IN_FLIGHT_TOKENS,
        f"ORCH-0068: the engine generated {after - at_ack} tokens for the task after its cancel "
        f"was acknowledged (at most {IN_FLIGHT_TOKENS} may be in flight)",
    )
    next_prompt = f"{tag} next"
    next_id = str(
        wire.admit(session, prompt=next_prompt, max_tokens=3, params={"seed": 9})["task_id"]
    )
    done = wire.wait_task(
        next_id,
        lambda t: t.get("state") == "completed",
        "ORCH-0093: once the running task is cancelled, its replica's only slot is free and the "
        "next task runs on it",
        timeout=10.0,
    )
    expect(
        done["tokens_out"] == 3,
        f"ORCH-0093: the next task completes with its 3 tokens; got {done['tokens_out']}",
    )

"""Execution and queue behaviour a client can see: failures, retries, timeouts, slots, routing.

Each check starts an orchestratord with the fault knob that makes the situation
happen (a replica that dies, stalls, rate-limits, never comes up, a one-slot
replica, a full ``drop_lru`` queue) through ``orch_serve``, then observes the
outcome only over HTTP: the task's state, error and ``attempts``, the pool's
counters and the stream's closing event. A live ``--orch-url`` target cannot be
given those faults, so these checks skip there with the standard reason.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from harness.plugin.target import ServeFactory
from harness.wire import Wire, expect, parse_rfc3339, read_stream

pytestmark = pytest.mark.contract

FAILED_KINDS = {"WORKER_RESET", "REPLICA_EXHAUSTED", "DECODE_TIMEOUT", "INTERNAL"}


def _serve(orch_serve: ServeFactory, replicas: list[dict[str, Any]], **pool: Any) -> Wire:
    target = orch_serve(pools=[{"pool_id": "default", "replicas": replicas, **pool}])
    return Wire(target.url, target.auth_headers())


def _two(**replica: Any) -> list[dict[str, Any]]:
    return [{"replica_id": "r1", **replica}, {"replica_id": "r2", **replica}]


def _stream_error_matches(wire: Wire, task: dict[str, Any], kind: str, req: str) -> None:
    """ORCH-0020/ORCH-0082: the stream closes with `error` equal to the task's error."""
    capture = read_stream(wire, str(task["task_id"]))
    problems = capture.format_problems()
    expect(not problems, f"stream of a {task['state']} task: " + "; ".join(problems))
    last = capture.events[-1] if capture.events else None
    error = task.get("error") or {}
    expect(
        error.get("kind") == kind,
        f"{req}: the task must end with error kind {kind}; got {task['state']!r} {error}",
    )
    expect(
        last is not None and last.event == "error" and last.data == error,
        f"ORCH-0082/ORCH-0020: the stream of a {task['state']} task closes with an `error` "
        f"event holding the task's error {error}; got "
        f"{(last.event, last.data) if last else None}",
    )


def _ms(stamp: Any) -> float:
    value: datetime = parse_rfc3339(stamp, "ORCH-0005", "an attempt timestamp")
    return value.timestamp() * 1000


@pytest.mark.req("ORCH-0108", "ORCH-0062", "ORCH-0020", "ORCH-0082", "ORCH-0100")
def test_best_effort_task_that_streamed_ends_worker_reset_without_retry(
    orch_serve: ServeFactory,
) -> None:
    with _serve(orch_serve, _two(faults={"fail_after_tokens": 2}), max_attempts=3) as wire:
        task = wire.wait_terminal(str(wire.admit(max_tokens=8)["task_id"]))
        expect(
            task["state"] == "failed" and len(task["attempts"]) == 1,
            f"ORCH-0108: a best_effort task whose replica failed after tokens were sent ends "
            f"failed WORKER_RESET without a retry; got {task['state']!r} after "
            f"{len(task['attempts'])} attempt(s)",
        )
        _stream_error_matches(wire, task, "WORKER_RESET", "ORCH-0108")


@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0062", "ORCH-0020", "ORCH-0078")
def test_every_attempt_failing_ends_replica_exhausted(orch_serve: ServeFactory) -> None:
    with _serve(orch_serve, _two(faults={"fail_after_tokens": 2}), max_attempts=3) as wire:
        admitted = wire.admit(max_tokens=8, params={"seed": 5, "determinism": "strict"})
        task = wire.wait_terminal(str(admitted["task_id"]))
        attempts = task["attempts"]
        expect(
            len(attempts) == 3 and [a["attempt"] for a in attempts] == [1, 2, 3],
            f"ORCH-0101: a task gets at most max_attempts (3) attempts, every retry counted; "
            f"got {[(a['attempt'], a['replica_id'], a['state']) for a in attempts]}",
        )
        expect(task["state"] == "failed", f"ORCH-0102: must end failed; got {task['state']!r}")
        _stream_error_matches(wire, task, "REPLICA_EXHAUSTED", "ORCH-0102")
        tokens = read_stream(wire, str(task["task_id"])).tokens()
        indices = [e.data.get("index") for e in tokens]
        expect(
            indices == [0, 1],
            f"ORCH-0078: strict retries do not repeat tokens already sent; indices {indices}",
        )


@pytest.mark.req("ORCH-0107", "ORCH-0062")
def test_strict_retry_that_diverges_ends_worker_reset(orch_serve: ServeFactory) -> None:
    replicas = _two(faults={"fail_after_tokens": 3, "nondeterministic": True})
    with _serve(orch_serve, replicas, max_attempts=2) as wire:
        admitted = wire.admit(max_tokens=8, params={"seed": 9, "determinism": "strict"})
        task = wire.wait_terminal(str(admitted["task_id"]))
        expect(
            task["state"] == "failed",
            f"ORCH-0107: a strict retry whose tokens differ from those sent ends failed; got "
            f"{task['state']!r}",
        )
        _stream_error_matches(wire, task, "WORKER_RESET", "ORCH-0107")


@pytest.mark.req("ORCH-0111", "ORCH-0112", "ORCH-0062", "ORCH-0020")
def test_stalled_replica_ends_decode_timeout_without_retry(orch_serve: ServeFactory) -> None:
    replicas = _two(faults={"stall_after_tokens": 1})
    with _serve(orch_serve, replicas, max_attempts=3, decode_timeout_ms=200) as wire:
        admitted = wire.admit(max_tokens=8, params={"seed": 3, "determinism": "strict"})
        task = wire.wait_terminal(str(admitted["task_id"]))
        expect(
            task["state"] == "failed" and len(task["attempts"]) == 1,
            f"ORCH-0111/ORCH-0112: no token within decode_timeout_ms ends the task failed "
            f"DECODE_TIMEOUT, not retried; got {task['state']!r} after "
            f"{len(task['attempts'])} attempt(s)",
        )
        _stream_error_matches(wire, task, "DECODE_TIMEOUT", "ORCH-0111")


@pytest.mark.req("ORCH-0097", "ORCH-0064", "ORCH-0020", "ORCH-0096")
def test_evicted_task_ends_dropped_and_its_stream_says_so(orch_serve: ServeFactory) -> None:
    slow = [{"replica_id": "r1", "slots": 1, "token_delay_ms": 40}]
    with _serve(orch_serve, slow, queue_capacity=1, overflow_policy="drop_lru") as wire:
        session_id = str(wire.new_session()["session_id"])
        holder = str(wire.admit(session_id, max_tokens=1000)["task_id"])
        wire.wait_running(holder)
        victim = str(wire.admit(session_id, max_tokens=3, priority="batch")["task_id"])
        newcomer = wire.admit(session_id, max_tokens=3, priority="interactive")
        task = wire.wait_terminal(victim, timeout=5)
        expect(
            task["state"] == "dropped",
            f"ORCH-0096/ORCH-0097: the oldest queued batch task is evicted for an interactive "
            f"newcomer and ends dropped; got {task['state']!r}",
        )
        _stream_error_matches(wire, task, "QUEUE_FULL_DROP_LRU", "ORCH-0064")
        for task_id in (holder, str(newcomer["task_id"])):
            wire.http.delete(f"/v1/tasks/{task_id}")


@pytest.mark.req("ORCH-0103", "ORCH-0091")
def test_down_replica_and_other_pools_get_no_attempts(orch_serve: ServeFactory) -> None:
    target = orch_serve(
        pools=[
            {"pool_id": "default", "replicas": [
                {"replica_id": "up"}, {"replica_id": "gone", "faults": {"unavailable": True}}]},
            {"pool_id": "other", "replicas": [{"replica_id": "o1"}]},
        ]
    )  # fmt: skip
    with Wire(target.url, target.auth_headers()) as wire:
        session_id = str(wire.new_session()["session_id"])
        ids = [wire.admit(session_id, max_tokens=2)["task_id"] for _ in range(6)]
        ids += [wire.admit(session_id, max_tokens=2, pool="other")["task_id"] for _ in range(3)]
        for task_id in ids:
            task = wire.wait_terminal(str(task_id))
            used = [a["replica_id"] for a in task["attempts"]]
            allowed = {"up"} if task["pool"] == "default" else {"o1"}
            expect(
                task["state"] == "completed" and set(used) <= allowed,
                f"ORCH-0103/ORCH-0091: a task of pool {task['pool']!r} runs only on its ready "
                f"replicas {sorted(allowed)}; attempts went to {used} ({task['state']})",
            )


@pytest.mark.req("ORCH-0092", "ORCH-0093", "ORCH-0123")
def test_replica_runs_at_most_its_slots_and_fills_free_ones(orch_serve: ServeFactory) -> None:
    slots = [{"replica_id": "r1", "slots": 2, "token_delay_ms": 20}]
    with _serve(orch_serve, slots) as wire:
        session_id = str(wire.new_session()["session_id"])
        ids = [str(wire.admit(session_id, max_tokens=1000)["task_id"]) for _ in range(4)]
        deadline = time.monotonic() + 10
        seen: list[tuple[int, int, int]] = []
        while time.monotonic() < deadline:
            pool = wire.pool()
            states = [wire.task(t)["state"] for t in ids]
            running = states.count("running")
            in_flight = pool["replicas"][0]["in_flight"]
            seen.append((running, in_flight, pool["queue_depth"]["interactive"]))
            expect(
                running <= 2 and in_flight <= 2,
                f"ORCH-0092: a 2-slot replica runs at most 2 attempts; saw {running} running "
                f"tasks, in_flight {in_flight}",
            )
            if len(seen) >= 20 and running == 2:
                break
            time.sleep(0.01)
        expect(
            seen[-1] == (2, 2, 2),
            f"ORCH-0093/ORCH-0123: with 4 tasks on a 2-slot replica, 2 run and 2 wait; last "
            f"(running, in_flight, queue_depth) {seen[-1]}",
        )
        for task_id in ids:
            wire.http.delete(f"/v1/tasks/{task_id}")


@pytest.mark.req("ORCH-0109", "ORCH-0110")
def test_engine_429_follows_the_routing_mode(orch_serve: ServeFactory) -> None:
    for mode, wait_s in (("aggressive_fallback", 30.0), ("intelligent_pacing", 1.0)):
        limited = {"faults": {"rate_limit": True, "rate_limit_retry_after_s": wait_s}}
        target = orch_serve(
            fallback_mode=mode,
            pools=[{"pool_id": "default", "max_attempts": 2, "replicas": _two(**limited)}],
        )
        with Wire(target.url, target.auth_headers()) as wire:
            task = wire.wait_terminal(str(wire.admit(max_tokens=2)["task_id"]), timeout=20)
            attempts = task["attempts"]
            expect(len(attempts) == 2, f"{mode}: expected 2 attempts, got {attempts}")
            gap_ms = _ms(attempts[1]["started_at"]) - _ms(attempts[0]["finished_at"])
            if mode == "aggressive_fallback":
                expect(
                    attempts[0]["replica_id"] != attempts[1]["replica_id"] and gap_ms < 29_000,
                    f"ORCH-0109: after an engine 429 in aggressive_fallback the next attempt "
                    f"starts at once on another replica; got {attempts}",
                )
            else:
                expect(
                    gap_ms >= 990,
                    f"ORCH-0110: in intelligent_pacing the next attempt waits at least the "
                    f"engine's Retry-After (1 s); it came after {gap_ms:.0f} ms",
                )

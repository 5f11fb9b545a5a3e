"""A workload whose every outcome the harness knows, and the metrics :class:`Truth` it implies.

``KnownWorkload(engine)`` sets the engine's fault rules first (its replicas'
warm-up probes meet them as the target starts); the target then runs the
configuration of :meth:`KnownWorkload.config` (spec section 11 keys): five
pools whose ``openai`` replicas are served by the harness's engine, which makes
the outcomes happen on purpose and spaces every token by :data:`TOKEN_DELAY_MS`:

- ``main`` (replicas ``m1``, ``m2``, one slot each, a queue of 2, ``reject``):
  a task completed by length, one stopped by the engine (``stop``), one whose
  engine dies after streaming (``WORKER_RESET``), one whose engine dies on every
  attempt (``REPLICA_EXHAUSTED``), running and queued tasks cancelled, a full
  queue's ``ADMISSION_REJECT``, and a resumed stream;
- ``stall`` (``t1``, a decode timeout of 500 ms): a task whose engine hangs
  (``DECODE_TIMEOUT``), alone in its pool so that no other task can time out
  on a loaded machine;
- ``lru`` (``l1``, one slot, a queue of 1, ``drop_lru``): an eviction
  (``dropped``) and a refusal with nothing evictable (``QUEUE_FULL_DROP_LRU``);
- ``down`` (``d1``, whose engine refuses everything): ``POOL_UNAVAILABLE``;
- ``warming`` (``w1``, whose engine's model list takes 30 s): ``POOL_UNREADY``.

Every outcome is checked as it happens (a task that ends otherwise than
designed fails the run, naming the requirement of that outcome), so the truth
covers every terminal state, finish reason, task error kind, rejection kind and
drop. Durations are bounded by the harness's own clock: a task's queue wait,
time to first token and inter-token gaps all lie within the time from just
before its admission request to the moment the harness saw it end; its first
token comes at least one token delay after its admission; a task queued behind
a holder waits at least until the harness released that holder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.metrics.truth import Span, Truth
from harness.wire import Wire, error_kind, expect, read_stream

__all__ = ["TOKEN_DELAY_MS", "KnownWorkload"]

TOKEN_DELAY_MS = 20
WARMUP_MS = 30_000
HOLD_TOKENS = 4096
"""``max_tokens`` of a holder: it keeps its slot until the harness cancels it."""

OUTCOME_REQ = {
    ("completed", "length"): "ORCH-0055",
    ("completed", "stop"): "ORCH-0055",
    ("failed", "WORKER_RESET"): "ORCH-0108",
    ("failed", "REPLICA_EXHAUSTED"): "ORCH-0102",
    ("failed", "DECODE_TIMEOUT"): "ORCH-0111",
    ("cancelled", "CANCELLED"): "ORCH-0066",
    ("dropped", "QUEUE_FULL_DROP_LRU"): "ORCH-0097",
}
REFUSAL_REQ = {
    "ADMISSION_REJECT": "ORCH-0095",
    "QUEUE_FULL_DROP_LRU": "ORCH-0098",
    "POOL_UNAVAILABLE": "ORCH-0049",
    "POOL_UNREADY": "ORCH-0048",
}


@dataclass
class _Task:
    task_id: str
    pool: str
    priority: str
    design: tuple[str, str]
    sent_at: float
    """``time.monotonic()`` just before the admission request."""
    admitted_at: float
    """When its 202 arrived."""
    min_wait: float = 0.0
    """Seconds it waited in the queue at least (it could not be dispatched sooner)."""
    ended_at: float = 0.0


@dataclass
class _Run:
    wire: Wire
    tag: str
    session: str
    tasks: list[_Task] = field(default_factory=list)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)
    resumes: dict[str, int] = field(default_factory=dict)

    def admit(
        self, pool: str, priority: str, what: str, max_tokens: int, design: tuple[str, str]
    ) -> _Task:
        sent = time.monotonic()
        admitted = self.wire.admit(
            self.session,
            prompt=f"{self.tag} {what}",
            pool=pool,
            priority=priority,
            max_tokens=max_tokens,
        )
        task = _Task(str(admitted["task_id"]), pool, priority, design, sent, time.monotonic())
        self.tasks.append(task)
        return task

    def refuse(self, pool: str, priority: str, kind: str) -> None:
        body = {
            "session_id": self.session,
            "prompt": f"{self.tag} refused",
            "pool": pool,
            "priority": priority,
            "max_tokens": 2,
        }
        response = self.wire.post_json("/v1/tasks", body)
        got = error_kind(response)
        expect(
            response.status_code in (429, 503) and got == kind,
            f"{REFUSAL_REQ[kind]}: the metrics workload needs this admission to pool {pool!r} "
            f"refused with {kind}; got {response.status_code} {got or response.text[:200]}",
        )
        self.refusals.append((pool, priority, kind))

    def finish(self, task: _Task) -> dict[str, Any]:
        """Wait for the task's end and check it ended as designed."""
        body = self.wire.wait_terminal(task.task_id, timeout=30)
        task.ended_at = time.monotonic()
        error = body.get("error") or {}
        outcome = (str(body.get("state")), str(body.get("finish_reason") or error.get("kind")))
        expect(
            outcome == task.design,
            f"{OUTCOME_REQ[task.design]}: the metrics workload needs task {task.task_id} "
            f"({task.pool}, {task.priority}) to end {task.design}; it ended {outcome}",
        )
        return body

    def cancel(self, task: _Task) -> float:
        """Cancel the task; returns when the request was sent."""
        sent = time.monotonic()
        self.wire.http.delete(f"/v1/tasks/{task.task_id}")
        return sent


def _wait_replica(wire: Wire, pool: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        replicas = wire.pool(pool).get("replicas", [])
        if replicas and all(r.get("state") == state for r in replicas):
            return
        expect(
            time.monotonic() < deadline,
            f"ORCH-0121: the replicas of pool {pool!r} must be {state!r} for the metrics "
            f"workload; they are {[r.get('state') for r in replicas]}",
        )
        time.sleep(0.02)


class KnownWorkload:
    """The workload on one engine: construct it before the target starts, then :meth:`run`."""

    def __init__(self, engine: EngineControl) -> None:
        self.engine = engine
        self.tag = unique_tag("metrics truth")
        tag = self.tag
        engine.set_faults(
            [
                rule({"token_delay_ms": TOKEN_DELAY_MS}, prompt_contains=tag),
                rule({"stop_after_tokens": 2}, prompt_contains=f"{tag} stop"),
                rule({"die_after_tokens": 2}, prompt_contains=f"{tag} reset"),
                rule({"die_after_tokens": 0}, prompt_contains=f"{tag} exhausted"),
                rule({"hang_after_tokens": 1}, prompt_contains=f"{tag} timeout"),
                rule({"unavailable": True}, replica="d1"),
                rule({"warmup_ms": WARMUP_MS}, replica="w1"),
            ]
        )

    ready_pools: tuple[str, ...] = ("main", "stall", "lru")
    """The pools that become ready (``down`` and ``warming`` are meant never to)."""

    def config(self) -> dict[str, Any]:
        """The target's configuration: top-level keys of spec section 11."""
        engine = self.engine
        return {
            "pools": [
                engine_pool(engine, "main", ("m1", "m2"), queue_capacity=2, max_attempts=2),
                engine_pool(engine, "stall", ("t1",), decode_timeout_ms=500),
                engine_pool(engine, "lru", ("l1",), queue_capacity=1, overflow_policy="drop_lru"),
                engine_pool(engine, "down", ("d1",)),
                engine_pool(engine, "warming", ("w1",)),
            ]
        }

    def run(self, wire: Wire) -> Truth:
        """Run the workload on a target started with :meth:`config`; returns what it must count."""
        session = str(wire.new_session()["session_id"])
        state = _Run(wire, self.tag, session)
        state.refuse("warming", "interactive", "POOL_UNREADY")  # first: it warms for 30 s
        _wait_replica(wire, "down", "down")
        state.refuse("down", "batch", "POOL_UNAVAILABLE")
        _wait_replica(wire, "main", "ready")
        _wait_replica(wire, "lru", "ready")
        _wait_replica(wire, "stall", "ready")
        _finished_outcomes(state)
        _queue_outcomes(state)
        _lru_outcomes(state)
        return _truth(state)


def _finished_outcomes(state: _Run) -> None:
    """One task per completion reason and engine-side error kind, then a resumed stream."""
    for pool, what, priority, tokens, design in (
        ("main", "length", "interactive", 4, ("completed", "length")),
        ("main", "stop", "batch", 6, ("completed", "stop")),
        ("main", "reset", "interactive", 6, ("failed", "WORKER_RESET")),
        ("main", "exhausted", "batch", 6, ("failed", "REPLICA_EXHAUSTED")),
        ("stall", "timeout", "interactive", 6, ("failed", "DECODE_TIMEOUT")),
    ):
        state.finish(state.admit(pool, priority, what, tokens, design))
    resumed = read_stream(state.wire, state.tasks[0].task_id, last_event_id=1)
    expect(
        resumed.status == 200, f"ORCH-0083: a resumed stream must answer 200; got {resumed.status}"
    )
    state.resumes["main"] = 1


def _queue_outcomes(state: _Run) -> None:
    """Both slots held, the queue full: a refusal, a queued and two running tasks cancelled."""
    wire = state.wire
    holders = [
        state.admit("main", p, "hold", HOLD_TOKENS, ("cancelled", "CANCELLED"))
        for p in ("interactive", "batch")
    ]
    for holder in holders:
        wire.wait_running(holder.task_id)
    queued = state.admit("main", "batch", "queued", 3, ("cancelled", "CANCELLED"))
    waiting = state.admit("main", "interactive", "waiting", 3, ("completed", "length"))
    state.refuse("main", "batch", "ADMISSION_REJECT")
    state.cancel(queued)
    released = state.cancel(holders[0])
    waiting.min_wait = max(0.0, released - waiting.admitted_at)
    state.cancel(holders[1])
    for task in (queued, *holders, waiting):
        state.finish(task)


def _lru_outcomes(state: _Run) -> None:
    """An eviction, then a refusal with nothing evictable."""
    holder = state.admit("lru", "interactive", "lru hold", HOLD_TOKENS, ("cancelled", "CANCELLED"))
    state.wire.wait_running(holder.task_id)
    evicted = state.admit("lru", "batch", "evicted", 3, ("dropped", "QUEUE_FULL_DROP_LRU"))
    newcomer = state.admit("lru", "interactive", "newcomer", 3, ("completed", "length"))
    state.refuse("lru", "batch", "QUEUE_FULL_DROP_LRU")
    released = state.cancel(holder)
    newcomer.min_wait = max(0.0, released - newcomer.admitted_at)
    for task in (evicted, holder, newcomer):
        state.finish(task)


def _truth(state: _Run) -> Truth:
    truth = Truth()
    delay_s = TOKEN_DELAY_MS / 1000
    for task in state.tasks:
        body = state.wire.task(task.task_id)
        pool, priority = task.pool, task.priority
        status, reason = task.design
        life = task.ended_at - task.sent_at
        tokens = int(body.get("tokens_out") or 0)
        truth.count("orchq_tasks_admitted_total", pool=pool, priority=priority)
        truth.count(
            "orchq_tasks_finished_total", pool=pool, priority=priority, state=status, reason=reason
        )
        if status == "dropped":
            truth.count("orchq_tasks_dropped_total", pool=pool, priority=priority)
        if tokens:
            truth.count(
                "orchq_generated_tokens_total", tokens, pool=pool, engine=str(body.get("engine"))
            )
            truth.observe("orchq_time_to_first_token_seconds", Span.one(delay_s, life), pool=pool)
            truth.observe(
                "orchq_inter_token_latency_seconds",
                Span(tokens - 1, 0.0, life, 0.0, life),
                pool=pool,
            )
        if body.get("attempts"):
            truth.observe(
                "orchq_queue_wait_seconds",
                Span.one(task.min_wait, life),
                pool=pool,
                priority=priority,
            )
    for pool, priority, kind in state.refusals:
        truth.count("orchq_tasks_rejected_total", pool=pool, priority=priority, kind=kind)
    for pool, count in state.resumes.items():
        truth.count("orchq_stream_resumes_total", count, pool=pool)
    return truth

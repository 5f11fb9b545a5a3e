"""Queue and execution behaviour a client can see: lanes, the batch share, capacity, slots, retries.

Each check starts a target of its own (``orch_serve``) whose replicas are the
harness's engine, with the faults that make the situation happen: replicas
that hold their slot (a slow or hanging engine), die, drift, or never come up.
It then observes the outcome only over HTTP: queue positions, which task runs
next, the task's state, error and ``attempts``, the pool's counters and the
stream's closing event. Against a live ``--orch-url`` target the faults cannot
be set, so these checks skip there with the standard reason.

The dispatch order is judged against :class:`~harness.properties.model.QueueModel`,
the queue written from the spec's sentences, which the in-process properties
suite also uses: here it judges any implementation over the wire.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.checks import orch_check
from harness.engine.control import EngineControl, ServeOnEngine, engine_pool, rule, unique_tag
from harness.plugin.target import ServeFactory
from harness.properties.model import Priority, QueueModel
from harness.wire import Wire, expect, expect_error, read_stream
from harness.wire.faulty import faulty_task, stream_error, task_error

pytestmark = pytest.mark.contract

HOLD_TOKENS = 4096
"""``max_tokens`` of a task meant to hold its slot until the check cancels it."""


# ---------------------------------------------------------------- 6 lanes, fairness, capacity


@pytest.mark.req("ORCH-0043", "ORCH-0088", "ORCH-0089", "ORCH-0090", "ORCH-0094", "ORCH-0095")
def test_lanes_dispatch_in_admission_order_with_the_batch_share(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    """One slot held by a hanging engine; the queue is filled to its capacity, then the slot
    is freed one task at a time: each next dispatch is the one the spec's queue takes."""
    share, capacity = 3, 7
    tag = unique_tag("queue order")
    orch_engine.set_faults([rule({"hang_after_tokens": 1}, prompt_contains=tag)])
    wire = serve_on_engine(
        {"queue_capacity": capacity, "batch_share_every": share, "decode_timeout_ms": 600_000},
        replicas=("r1",),
    )
    session = str(wire.new_session()["session_id"])
    holder = str(wire.admit(session, prompt=f"{tag} holder", max_tokens=HOLD_TOKENS)["task_id"])
    wire.wait_running(holder)
    model = QueueModel(capacity, "reject", share)
    lanes: tuple[Priority, ...] = (
        "batch",
        "interactive",
        "interactive",
        "batch",
        "interactive",
        "batch",
        "interactive",
    )
    for n, priority in enumerate(lanes):
        admitted = wire.admit(
            session, prompt=f"{tag} {n}", priority=priority, max_tokens=HOLD_TOKENS
        )
        task_id = str(admitted["task_id"])
        expect(
            admitted["queue_position"] == len(model.lanes[priority]),
            f"ORCH-0043: the {n + 1}th task ({priority}) has {len(model.lanes[priority])} tasks "
            f"ahead of it in its lane; queue_position says {admitted['queue_position']}",
        )
        model.admit(task_id, priority, None)
    refused = wire.post_json(
        "/v1/tasks", {"session_id": session, "prompt": f"{tag} over", "max_tokens": 1}
    )
    expect_error(
        refused,
        429,
        "ADMISSION_REJECT",
        "ORCH-0095",
        f"a task for a reject pool holding {capacity} queued tasks (capacity {capacity})",
    )
    depth = wire.pool()["queue_depth"]
    expect(
        depth == {"interactive": 4, "batch": 3},
        f"ORCH-0094: the pool holds its capacity ({capacity}) of queued tasks, the running one "
        f"not counted, and no more; queue_depth {depth}",
    )
    queued = [*model.lanes["interactive"], *model.lanes["batch"]]
    running = holder
    taken: list[str] = []
    while queued:
        wire.http.delete(f"/v1/tasks/{running}")
        with orch_check("ORCH-0093"):
            running = wire.one_running(queued)
        lane = model.expect_dispatch()
        assert lane is not None
        expected = model.lanes[lane][0]
        took = "batch" if running in model.lanes["batch"] else "interactive"
        taken.append(took)
        if took != lane:
            req = "ORCH-0090" if lane == "batch" else "ORCH-0089"
            expect(
                False,
                f"{req}: dispatch {len(taken)} must take the {lane} lane (batch share "
                f"every {share}); it took {took}; dispatches so far {taken}",
            )
        expect(
            running == expected,
            f"ORCH-0088: the {lane} lane is dispatched in admission order; dispatch "
            f"{len(taken)} took a later {lane} task than the oldest one waiting",
        )
        model.dispatched(lane)
        queued.remove(running)
    wire.http.delete(f"/v1/tasks/{running}")


# ---------------------------------------------------------------- 6.2 eviction


@pytest.mark.req("ORCH-0097", "ORCH-0064", "ORCH-0020", "ORCH-0096")
def test_evicted_task_ends_dropped_and_its_stream_says_so(serve_on_engine: ServeOnEngine) -> None:
    wire = serve_on_engine(
        {"queue_capacity": 1, "overflow_policy": "drop_lru"}, replicas=("r1",), token_delay_ms=40
    )
    session_id = str(wire.new_session()["session_id"])
    holder = str(wire.admit(session_id, max_tokens=1000)["task_id"])
    wire.wait_running(holder)
    victim = str(wire.admit(session_id, max_tokens=3, priority="batch")["task_id"])
    newcomer = wire.admit(session_id, max_tokens=3, priority="interactive")
    with orch_check("ORCH-0096"):  # the victim must be evicted for the newcomer
        task = wire.wait_terminal(victim, timeout=5)
    expect(
        task["state"] == "dropped",
        f"ORCH-0096/ORCH-0097: the oldest queued batch task is evicted for an interactive "
        f"newcomer and ends dropped; got {task['state']!r}",
    )
    task_error(task, "QUEUE_FULL_DROP_LRU", "ORCH-0097", state="dropped")
    stream_error(wire, task, "QUEUE_FULL_DROP_LRU", "ORCH-0064")
    for task_id in (holder, str(newcomer["task_id"])):
        wire.http.delete(f"/v1/tasks/{task_id}")


# ---------------------------------------------------------------- 6.1 slots and pools


@pytest.mark.req("ORCH-0103", "ORCH-0091")
def test_down_replica_and_other_pools_get_no_attempts(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    orch_engine.set_faults([rule({"unavailable": True}, replica="gone")])
    target = orch_serve(
        pools=[
            engine_pool(orch_engine, "default", ("up", "gone")),
            engine_pool(orch_engine, "other", ("o1",)),
        ]
    )
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
def test_replica_runs_at_most_its_slots_and_fills_free_ones(
    serve_on_engine: ServeOnEngine,
) -> None:
    wire = serve_on_engine(replicas=("r1",), slots=2, token_delay_ms=20)
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


# ---------------------------------------------------------------- 7 retries


@pytest.mark.req("ORCH-0107", "ORCH-0062", "ORCH-0020")
def test_strict_retry_that_diverges_ends_worker_reset(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    """Every attempt dies after 3 tokens and samples with a fresh seed: the retry cannot
    reproduce the tokens already sent."""
    faults: dict[str, Any] = {"die_after_tokens": 3, "nondeterministic": True}
    run = faulty_task(
        serve_on_engine,
        orch_engine,
        faults,
        {"max_attempts": 2},
        max_tokens=8,
        req="ORCH-0107",
        seed=9,
        determinism="strict",
    )
    task_error(run.task, "WORKER_RESET", "ORCH-0107")
    stream_error(run.wire, run.task, "WORKER_RESET", "ORCH-0107")


@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0078", "ORCH-0062", "ORCH-0020")
def test_strict_retries_exhausted_repeat_no_token(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    """Every attempt dies after 2 tokens: the retries regenerate them but send none again,
    and the third failure exhausts the task."""
    run = faulty_task(
        serve_on_engine,
        orch_engine,
        {"die_after_tokens": 2},
        {"max_attempts": 3},
        max_tokens=8,
        req="ORCH-0102",
        seed=5,
        determinism="strict",
    )
    attempts = run.task["attempts"]
    expect(
        [a["attempt"] for a in attempts] == [1, 2, 3],
        f"ORCH-0101: a task gets at most max_attempts (3) attempts, every retry counted; "
        f"got {[(a['attempt'], a['replica_id'], a['state']) for a in attempts]}",
    )
    task_error(run.task, "REPLICA_EXHAUSTED", "ORCH-0102")
    stream_error(run.wire, run.task, "REPLICA_EXHAUSTED", "ORCH-0102")
    indices = [e.data.get("index") for e in read_stream(run.wire, run.task_id).tokens()]
    expect(
        indices == [0, 1],
        f"ORCH-0078: strict retries do not repeat tokens already sent; indices {indices}",
    )

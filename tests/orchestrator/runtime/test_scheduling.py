"""Dispatch order, overflow and accounting of the admission queue, over real HTTP.

A single replica with one slot makes the dispatch order observable: a long
"blocker" task holds the slot while the others queue up, then the blocker is
cancelled and the queue drains one task at a time. Each task's ``started_at``
(millisecond resolution; every task decodes for several ms) gives the order.

Spec: ORCH-0006, ORCH-0043, ORCH-0060, ORCH-0064, ORCH-0067, ORCH-0069, ORCH-0074,
ORCH-0081, ORCH-0082, ORCH-0088, ORCH-0089, ORCH-0090, ORCH-0096, ORCH-0097, ORCH-0098,
ORCH-0099.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import httpx
import pytest

from orchestrator.client import OrchClient, OrchError
from orchestrator.config import Config
from orchestrator.vocabulary import Priority
from tests.orchestrator.wire import wait_terminal
from tests.support import pool, wait_until

TOKEN_DELAY_MS = 4


def one_slot_pool(**keys: Any) -> dict[str, Any]:
    replica = {"replica_id": "r1", "slots": 1, "token_delay_ms": TOKEN_DELAY_MS}
    return pool("default", replicas=[replica], **keys)


def start_blocker(client: OrchClient, session_id: str) -> str:
    """Occupy the only slot until cancelled."""
    blocker = client.submit_task(session_id, "blocker", max_tokens=4096)
    wait_until(lambda: client.get_task(blocker.task_id).state == "running", timeout=5)
    return blocker.task_id


def wait_all_terminal(url: str, task_ids: list[str], timeout: float = 20) -> None:
    """Until every task of ``task_ids`` has reached a terminal state."""
    with httpx.Client(base_url=url, timeout=15.0) as http:
        for task_id in task_ids:
            wait_terminal(http, task_id, timeout)


def dispatch_order(client: OrchClient, task_ids: list[str]) -> list[str]:
    started = {t: client.get_task(t).started_at for t in task_ids}
    assert all(s is not None for s in started.values()), started
    stamps = list(started.values())
    assert len(set(stamps)) == len(stamps), "two dispatches share a started_at; order unknown"
    return sorted(task_ids, key=lambda t: str(started[t]))


def expected_order(interactive: list[str], batch: list[str], share: int) -> list[str]:
    """The spec's dispatch order when everything is queued before the first dispatch."""
    i, b, out, streak = list(interactive), list(batch), [], 0
    while i or b:
        if b and (not i or streak >= share - 1):
            out.append(b.pop(0))
            streak = 0
        else:
            streak = streak + 1 if b else 0
            out.append(i.pop(0))
    return out


def raw_events(base_url: str, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The whole (finished) stream as ``(event, data)`` pairs, read without the typed client."""
    response = httpx.get(f"{base_url}/v1/tasks/{task_id}/stream", timeout=10)
    assert response.status_code == 200
    events: list[tuple[str, dict[str, Any]]] = []
    for block in response.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


# ---------------------------------------------------------------- dispatch order


@pytest.mark.parametrize(("n_interactive", "n_batch", "share"), [(9, 4, 4), (6, 6, 2), (4, 5, 3)])
@pytest.mark.req("ORCH-0088", "ORCH-0089", "ORCH-0090")
def test_fifo_per_lane_and_fairness_budget(
    serve: Callable[..., Any],
    make_config: Callable[..., Config],
    n_interactive: int,
    n_batch: int,
    share: int,
) -> None:
    server = serve(make_config(pools=[one_slot_pool(batch_share_every=share)]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        blocker = start_blocker(client, sid)
        # interleave submissions so admission order is not lane order
        interactive: list[str] = []
        batch: list[str] = []
        for k in range(max(n_interactive, n_batch)):
            if k < n_batch:
                batch.append(
                    client.submit_task(sid, f"b{k}", priority="batch", max_tokens=2).task_id
                )
            if k < n_interactive:
                interactive.append(client.submit_task(sid, f"i{k}", max_tokens=2).task_id)
        depth = client.get_pool("default").queue_depth
        assert (depth.interactive, depth.batch) == (n_interactive, n_batch)

        client.cancel_task(blocker)
        everything = interactive + batch
        wait_all_terminal(server.url, everything)
        assert {client.get_task(t).state for t in everything} == {"completed"}
        order = dispatch_order(client, everything)

    lane = {t: "i" for t in interactive} | {t: "b" for t in batch}
    # FIFO within each lane
    assert [t for t in order if lane[t] == "i"] == interactive
    assert [t for t in order if lane[t] == "b"] == batch
    # fairness: while both lanes wait, >= 1 batch in every `share` consecutive dispatches
    remaining_i, remaining_b = n_interactive, n_batch
    contended: list[str] = []
    for t in order:
        if remaining_i and remaining_b:
            contended.append(lane[t])
        if lane[t] == "i":
            remaining_i -= 1
        else:
            remaining_b -= 1
    for start in range(len(contended) - share + 1):
        assert "b" in contended[start : start + share], contended
    # and interactive goes first otherwise: the order is exactly the spec's
    assert order == expected_order(interactive, batch, share)


# ---------------------------------------------------------------- admission


@pytest.mark.req("ORCH-0043", "ORCH-0067")
def test_queue_positions_at_admission(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    server = serve(make_config(pools=[one_slot_pool()]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        blocker = client.submit_task(sid, "blocker", max_tokens=4096)
        assert blocker.queue_position == 0
        wait_until(lambda: client.get_task(blocker.task_id).state == "running", timeout=5)
        plan: list[Literal["interactive", "batch"]] = [
            "interactive",
            "interactive",
            "batch",
            "interactive",
            "batch",
            "batch",
        ]
        admitted = [client.submit_task(sid, "p", priority=p, max_tokens=1) for p in plan]
        assert [a.queue_position for a in admitted] == [0, 1, 0, 2, 1, 2]
        assert all(a.state == "queued" for a in admitted)
        # cancelling a queued task moves the ones behind it up
        client.cancel_task(admitted[0].task_id)
        late = client.submit_task(sid, "late", max_tokens=1)
        assert late.queue_position == 2
        client.cancel_task(blocker.task_id)
        wait_all_terminal(server.url, [a.task_id for a in admitted[1:]] + [late.task_id])


@pytest.mark.req(
    "ORCH-0064",
    "ORCH-0069",
    "ORCH-0082",
    "ORCH-0088",
    "ORCH-0096",
    "ORCH-0097",
    "ORCH-0098",
    "ORCH-0099",
)
def test_drop_lru_evicts_the_right_task_and_ends_its_stream(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    server = serve(make_config(pools=[one_slot_pool(queue_capacity=3, overflow_policy="drop_lru")]))
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        blocker = start_blocker(client, sid)

        def submit(name: str, priority: str) -> str:
            return client.submit_task(sid, name, priority=priority, max_tokens=1).task_id  # type: ignore[arg-type]

        b1, b2, i1 = submit("b1", "batch"), submit("b2", "batch"), submit("i1", "interactive")
        assert client.get_pool("default").queue_depth.model_dump() == {
            "interactive": 1,
            "batch": 2,
        }

        def state(task_id: str) -> str:
            return client.get_task(task_id).state

        # interactive newcomer: the oldest batch task goes, not the interactive one
        i2 = submit("i2", "interactive")
        assert state(b1) == "dropped"
        assert {state(t) for t in (b2, i1, i2)} == {"queued"}
        # batch newcomer: the oldest batch task goes
        b3 = submit("b3", "batch")
        assert state(b2) == "dropped"
        assert {state(t) for t in (i1, i2, b3)} == {"queued"}
        # interactive newcomer again: the (only) batch task goes, although it is the newest
        i3 = submit("i3", "interactive")
        assert state(b3) == "dropped"
        # the queue is all interactive: a batch newcomer has nothing evictable
        with pytest.raises(OrchError) as refused:
            submit("b4", "batch")
        assert refused.value.status == 429
        assert refused.value.kind == "QUEUE_FULL_DROP_LRU"
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1
        assert {state(t) for t in (i1, i2, i3)} == {"queued"}
        # an interactive newcomer evicts the oldest interactive task
        i4 = submit("i4", "interactive")
        assert state(i1) == "dropped"
        assert client.get_pool("default").queue_depth.model_dump() == {
            "interactive": 3,
            "batch": 0,
        }

        dropped = [b1, b2, b3, i1]
        for task_id in dropped:
            task = client.get_task(task_id)
            assert task.state == "dropped"
            assert task.error is not None and task.error.kind == "QUEUE_FULL_DROP_LRU"
            assert task.started_at is None and task.attempts == []
            assert task.finished_at is not None
            events = raw_events(server.url, task_id)
            assert [e for e, _ in events] == ["error"]
            assert events[-1][1]["kind"] == "QUEUE_FULL_DROP_LRU"
            # a dropped task has ended: it cannot be cancelled any more
            with pytest.raises(OrchError) as conflict:
                client.cancel_task(task_id)
            assert conflict.value.status == 409

        client.cancel_task(blocker)
        survivors = [i2, i3, i4]
        wait_all_terminal(server.url, survivors)
        assert {state(t) for t in survivors} == {"completed"}
        # the survivors ran in admission order
        assert dispatch_order(client, survivors) == survivors


@pytest.mark.req("ORCH-0064", "ORCH-0074")
def test_drop_lru_live_stream_reader_sees_the_drop(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    """A reader already following a queued task gets its ``error`` event when it is evicted."""
    server = serve(make_config(pools=[one_slot_pool(queue_capacity=1, overflow_policy="drop_lru")]))
    with OrchClient(server.url) as client, ThreadPoolExecutor(1) as pool_:
        sid = client.create_session().session_id
        blocker = start_blocker(client, sid)
        victim = client.submit_task(sid, "victim", priority="batch", max_tokens=1).task_id
        with OrchClient(server.url) as reader:
            future = pool_.submit(reader.collect_stream, victim, reconnect=False)
            # make sure the reader is attached before the eviction
            wait_until(lambda: _stream_readers_attached(server, victim), timeout=5)
            client.submit_task(sid, "newcomer", max_tokens=1)
            result = future.result(timeout=10)
        assert result.started is None and result.tokens == []
        assert result.error is not None and result.error.kind == "QUEUE_FULL_DROP_LRU"
        client.cancel_task(blocker)


def _stream_readers_attached(server: Any, task_id: str) -> bool:
    orchestrator = server.app.state.orchestrator

    def waiting() -> bool:
        live = orchestrator.live.get(task_id)
        return live is not None and live.channel._waiter is not None

    return bool(server.call(waiting))


# ---------------------------------------------------------------- nothing is lost


@pytest.mark.slow
@pytest.mark.req("ORCH-0006", "ORCH-0060", "ORCH-0081")
def test_every_admitted_task_reaches_exactly_one_terminal_state(
    serve: Callable[..., Any], make_config: Callable[..., Config]
) -> None:
    # 60 ms per task: the burst ends with a full queue, so the newest tasks are
    # still queued when they are cancelled (with 6 ms tasks a fast server had
    # finished every one of them first, and the test saw no cancellation).
    replicas = [
        {"replica_id": "r1", "slots": 1, "token_delay_ms": 10},
        {"replica_id": "r2", "slots": 1, "token_delay_ms": 10},
    ]
    server = serve(
        make_config(
            pools=[
                pool("default", replicas=replicas, queue_capacity=12, overflow_policy="drop_lru")
            ]
        )
    )
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id

        def submit(k: int) -> str | tuple[int, str]:
            priority: Priority = "batch" if k % 3 == 0 else "interactive"
            try:
                return client.submit_task(
                    sid, f"burst {k}", priority=priority, max_tokens=6
                ).task_id
            except OrchError as exc:
                return (exc.status, exc.kind)

        with ThreadPoolExecutor(8) as executor:
            outcomes = list(executor.map(submit, range(100)))
        admitted = [t for t in outcomes if isinstance(t, str)]
        refusals = {t for t in outcomes if not isinstance(t, str)}
        assert refusals <= {(429, "QUEUE_FULL_DROP_LRU")}, refusals
        assert admitted, "nothing was admitted"
        assert len(set(admitted)) == len(admitted)
        cancel_outcomes: set[int] = set()
        for task_id in [admitted[-1], *admitted[::7]]:  # the newest first: surely queued
            try:
                client.cancel_task(task_id)
                cancel_outcomes.add(200)
            except OrchError as exc:
                cancel_outcomes.add(exc.status)  # already ended
        assert cancel_outcomes <= {200, 409}, cancel_outcomes

        def settled() -> bool:
            counts = client.get_session(sid).tasks
            return counts.queued == counts.running == 0

        wait_until(settled, timeout=30, interval=0.02)
        expected_terminal = {
            "completed": ("end", None),
            "dropped": ("error", "QUEUE_FULL_DROP_LRU"),
            "cancelled": ("error", "CANCELLED"),
        }
        seen_states: set[str] = set()
        for task_id in admitted:
            task = client.get_task(task_id)
            assert task.state in expected_terminal, (task_id, task.state, task.error)
            seen_states.add(task.state)
            assert task.finished_at is not None
            events = raw_events(server.url, task_id)
            terminal = [(e, d) for e, d in events if e in ("end", "error")]
            assert len(terminal) == 1, (task_id, events)
            assert events[-1] == terminal[0]
            event, kind = expected_terminal[task.state]
            assert terminal[0][0] == event
            if kind is not None:
                assert terminal[0][1]["kind"] == kind
            else:
                assert terminal[0][1]["tokens_out"] == task.tokens_out == 6
            # a second look gives the same answer: the terminal state is persisted
            assert client.get_task(task_id).state == task.state

        counts = client.get_session(sid).tasks
        assert (counts.queued, counts.running, counts.terminal) == (0, 0, len(admitted))
        pool_view = client.get_pool("default")
        assert pool_view.queue_depth.interactive == pool_view.queue_depth.batch == 0
        assert all(r.in_flight == 0 for r in pool_view.replicas)
        assert "completed" in seen_states and "cancelled" in seen_states

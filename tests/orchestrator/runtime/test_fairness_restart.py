"""The fairness window of a pool continues across a ``kill -9`` and restart.

A real ``orchq serve`` with one single-slot, slow replica (so attempt start
order is dispatch order) and ``batch_share_every: 4`` is killed after k=2
interactive dispatches made while a batch task waited. On the same database
the restarted server must dispatch exactly N-1-k = 1 more interactive task
and then the batch task: fewer would give batch a turn the budget does not
give (ORCH-0089), more would stretch the window past N-1 (ORCH-0090) now that
the queue is restored as it was (ORCH-0140).

Spec: ORCH-0089, ORCH-0090, ORCH-0140.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.client import OrchClient
from orchestrator.schemas import Task
from tests.orchestrator.serve_process import ServeProcess, single_slot_config
from tests.support import wait_until

pytestmark = pytest.mark.slow

N = 4
K = 2
"""Interactive dispatches while batch waited, before the crash."""


@pytest.fixture
def fair_config(tmp_path: Path) -> Path:
    return single_slot_config(tmp_path / "orchq.yaml", batch_share_every=N, max_attempts=3)


def first_start(task: Task) -> str:
    assert task.attempts, f"task {task.task_id} never started"
    return task.attempts[0].started_at


def longest_window(tasks: list[Task]) -> int:
    """Most interactive dispatches in a row while a batch task was queued (observed record)."""
    order = sorted(tasks, key=first_start)
    batches = [t for t in tasks if t.priority == "batch"]
    run = longest = 0
    for task in order:
        at = first_start(task)
        if task.priority == "batch":
            run = 0
        elif any(b.created_at <= at < first_start(b) for b in batches):
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return longest


@pytest.mark.req("ORCH-0089", "ORCH-0090", "ORCH-0140")
def test_kill_9_mid_window_keeps_the_batch_share(
    fair_config: Path, tmp_path: Path, serve_process: Callable[[Path, Path], ServeProcess]
) -> None:
    db = tmp_path / "orchq.db"
    first = serve_process(fair_config, db)
    with OrchClient(first.url) as client:
        session = client.create_session().session_id

        def submit(name: str, tokens: int, priority: str = "interactive") -> str:
            return client.submit_task(
                session, name, priority=priority, max_tokens=tokens, seed=1, determinism="strict"
            ).task_id

        # i0 takes the slot at once (no batch waiting yet); it runs long enough
        # for everything else to be queued behind it.
        inter = [submit("i0", 50)]
        batch = submit("b0", 2, "batch")
        inter += [submit(f"i{i}", 40 if i == K else 2) for i in range(1, 8)]
        # i1 (short) and i2 (long) are the k=2 dispatches while b0 waits; kill in i2.
        wait_until(lambda: client.get_task(inter[K]).tokens_out >= 1, timeout=30)
    first.kill9()

    second = serve_process(fair_config, db)
    with OrchClient(second.url) as client:
        for task_id in [*inter, batch]:
            client.collect_stream(task_id)
        after = [client.get_task(t) for t in [*inter, batch]]
    assert {t.state for t in after} == {"completed"}
    killed = after[K].attempts[0]
    assert killed.error_kind == "WORKER_RESET", f"setup: {inter[K]} was not killed mid-run"
    started_before = [t.task_id for t in after if first_start(t) <= killed.started_at]
    assert started_before == inter[: K + 1], (
        f"setup: expected {inter[: K + 1]} dispatched before the crash, got {started_before}"
    )
    queued_at_crash = [t for t in after if t.task_id not in started_before]
    order = [t.task_id for t in sorted(queued_at_crash, key=first_start)]
    position = order.index(batch)
    assert position <= N - 1 - K, (
        f"ORCH-0090: at least one of every {N} consecutive dispatches must take a batch task; "
        f"{K} interactive dispatches before the crash and {position} after it went ahead of "
        f"the waiting batch task (order after restart: {order})"
    )
    assert position == N - 1 - K, (
        f"ORCH-0089: interactive goes first except for the budget's batch turn; the batch task "
        f"was dispatched after only {K}+{position} interactive dispatches in the window"
    )
    assert order[:position] == inter[K + 1 : K + 1 + position], (
        f"ORCH-0140: queued interactive tasks must keep their admission order: {order}"
    )
    assert longest_window(after) <= N - 1, (
        f"ORCH-0090: a window of {longest_window(after)} interactive dispatches while batch waited"
    )

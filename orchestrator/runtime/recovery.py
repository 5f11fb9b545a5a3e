"""Resuming after a restart what the last process left queued or running.

Queued tasks go back to their lanes in admission order (ORCH-0140), each pool's
fairness streak continuing from the persisted dispatches
(docs/design/fairness-across-restarts.md). A task that was running has its open
attempt failed with ``WORKER_RESET`` and is retried, or ended, as after a
replica failure (ORCH-0141..0143); its stream continues its sequence numbers
(ORCH-0144).
"""

from __future__ import annotations

from orchestrator.errors import task_error
from orchestrator.queue import PastDispatch, derive_streak
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.execution import Executor, Failure, task_error_after
from orchestrator.runtime.tasks import LiveTask
from orchestrator.runtime.termination import Termination
from orchestrator.vocabulary import ErrorKind


def recover(context: RuntimeContext, executor: Executor, termination: Termination) -> None:
    """Restore every pool's fairness streak, then every live task of the database."""
    store = context.store
    for pool in context.pools.values():
        every = pool.queue.batch_share_every
        past = [
            PastDispatch(row.priority, row.batch_waiting)
            for row in store.recent_dispatches(pool.pool_id, every - 1)
        ]
        pool.queue.restore_streak(derive_streak(past, every))
    for row in store.live_tasks():
        events = store.events(row.task_id)
        lt = LiveTask.resumed(row, events) if events else LiveTask(row=row)
        context.live[row.task_id] = lt
        task_pool = context.pools.get(row.pool_id)
        if task_pool is None:
            gone = task_error(
                ErrorKind.POOL_UNAVAILABLE, f"pool {row.pool_id!r} is no longer configured"
            )
            termination.finish(lt, "failed", error=gone)
            continue
        if row.state == "queued":
            task_pool.queue.restore(row.task_id, row.priority)
            continue
        attempts = store.attempts(row.task_id)
        lt.attempts = len(attempts)
        now = context.clock.now_ms()
        for attempt in attempts:
            if attempt.state == "running":
                executor.finish_attempt(row.task_id, attempt.attempt, ErrorKind.WORKER_RESET, now)
        failure = Failure(ErrorKind.WORKER_RESET, "orchestrator restarted mid-decode")
        error = task_error_after(lt, task_pool, failure)
        if error is not None:
            termination.finish(lt, "failed", error=error)
        else:
            executor.start_runner(lt, task_pool, None)

"""How a live task ends: its one terminal state, its closing event, its last attempt.

:meth:`Termination.finish` is the only way out of the live set. It queues the
outcome in the journal (task row, last attempt, closing event) and publishes it
once that commit has landed: until then the task stays live and its closing
event hidden, so nobody sees an outcome before it is durable (ORCH-0065), and a
task reaches exactly one terminal state (ORCH-0060). Answers that report an
outcome at once (a cancellation) commit it themselves.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ApiError, task_error
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.starts import AttemptStarts
from orchestrator.runtime.tasks import LiveTask
from orchestrator.store import AttemptRow
from orchestrator.vocabulary import AttemptState, ErrorKind, TaskState

AttemptEnd = tuple[int, AttemptState, str | None]
"""``(attempt number, state, error_kind)`` of the attempt that ends with the task."""


class Termination:
    def __init__(self, context: RuntimeContext, starts: AttemptStarts) -> None:
        self._context = context
        self._starts = starts

    def finish(
        self,
        lt: LiveTask,
        state: TaskState,
        *,
        error: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        attempt: AttemptEnd | None = None,
    ) -> None:
        """End ``lt`` in ``state``: events, task row and attempt in one commit; once only."""
        if lt.finished:
            return
        lt.finished = True
        context = self._context
        row = lt.row
        if state == "completed":
            assert finish_reason is not None
            end = {"tokens_out": len(lt.sent), "finish_reason": finish_reason, "seed": row.seed}
            context.emit(lt, "end", end)
        else:
            assert error is not None
            context.emit(lt, "error", error)
        now = context.clock.now_ms()
        if attempt is None and lt.attempt_open is not None:
            attempt = (lt.attempt_open, "cancelled" if state == "cancelled" else "failed", None)
        lt.attempt_open = None
        started = self._starts.take(lt)
        tokens_out = len(lt.sent)
        store = context.store

        def persist() -> None:
            attempt_done = False
            outcome = {
                "state": state,
                "tokens_out": tokens_out,
                "finish_reason": finish_reason,
                "error": error,
                "finished_ms": now,
            }
            if started is not None:  # the attempt began in this very step: one write each
                begun, fields = started
                if attempt is not None and attempt[0] == begun.attempt:
                    begun = AttemptRow(
                        begun.task_id,
                        begun.attempt,
                        begun.replica_id,
                        attempt[1],
                        attempt[2],
                        begun.started_ms,
                        now,
                    )
                    attempt_done = True
                store.insert_attempt(begun)
                store.update_task(row.task_id, **{**fields, **outcome})
            else:
                store.update_task(row.task_id, **outcome)
            if attempt is not None and not attempt_done:
                store.finish_attempt(row.task_id, attempt[0], attempt[1], attempt[2], now)

        def publish() -> None:
            row.state, row.tokens_out, row.finish_reason = state, tokens_out, finish_reason
            row.error, row.finished_ms = error, now
            lt.channel.close()
            context.live.pop(row.task_id)
            reason = str(finish_reason) if error is None else str(error["kind"])
            metrics = context.metrics
            metrics.child(metrics.tasks_finished, row.pool_id, row.priority, state, reason).inc()
            for listener in context.task_ended:
                listener(row)

        context.journal.write(persist)
        context.journal.then(publish)

    def cancel(self, lt: LiveTask, why: str) -> None:
        """End ``lt`` ``cancelled``: out of its queue at once (ORCH-0067), its decoding stopped
        (ORCH-0068)."""
        pool = self._context.pools.get(lt.row.pool_id)
        if pool is not None and lt.row.state == "queued":
            pool.queue.remove(lt.task_id)
        self.finish(lt, "cancelled", error=task_error(ErrorKind.CANCELLED, why))
        if lt.runner is not None:
            lt.runner.cancel()

    def cancel_task(self, task_id: str) -> None:
        """The client's cancellation, durable when this returns; 409 for an ended task
        (ORCH-0066, ORCH-0069)."""
        context = self._context
        lt = context.live.get(task_id)
        if lt is not None and lt.finished:
            context.journal.commit_now()  # its outcome waits in the journal: land it, then 409
            lt = context.live.get(task_id)
        if lt is None:
            row = context.store.get_task(task_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
            raise ApiError(
                ErrorKind.CONFLICT,
                f"task {task_id!r} already ended ({row.state})",
                details={"state": row.state},
            )
        self.cancel(lt, "cancelled by the client")
        context.journal.commit_now()

    def drop(self, task_id: str) -> None:
        """Evict a queued task from a full ``drop_lru`` queue (ORCH-0096, ORCH-0064)."""
        context = self._context
        lt = context.live[task_id]
        metrics = context.metrics
        metrics.child(metrics.tasks_dropped, lt.row.pool_id, lt.row.priority).inc()
        error = task_error(
            ErrorKind.QUEUE_FULL_DROP_LRU, "evicted from a full queue (overflow policy drop_lru)"
        )
        self.finish(lt, "dropped", error=error)

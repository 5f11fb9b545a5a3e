"""What readers see: a task, its stream, the pools; built as the wire models of the API.

A read of a live task first lands what waits in the journal, its attempt's
start included, so that it sees everything the task has done; that commit may
finish the task, which is then read like any ended one (ORCH-0051..0058).
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator import schemas as wire
from orchestrator.errors import ApiError
from orchestrator.metrics import PoolSnapshot
from orchestrator.runtime.clock import rfc3339
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.pool import Pool
from orchestrator.runtime.starts import AttemptStarts
from orchestrator.runtime.streams import StreamSource
from orchestrator.vocabulary import PRIORITIES, ErrorKind


class Views:
    def __init__(self, context: RuntimeContext, starts: AttemptStarts) -> None:
        self._context = context
        self._starts = starts

    def task(self, task_id: str) -> wire.Task:
        context = self._context
        lt = context.live.get(task_id)
        if lt is not None:
            self._starts.write(lt)
            context.journal.commit_if_possible()
            lt = context.live.get(task_id)
        row = lt.row if lt is not None else context.store.get_task(task_id)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
        attempts = [
            wire.Attempt(
                attempt=a.attempt,
                replica_id=a.replica_id,
                state=a.state,
                error_kind=a.error_kind,
                started_at=rfc3339(a.started_ms),
                finished_at=rfc3339(a.finished_ms),
            )
            for a in context.store.attempts(task_id)
        ]
        return wire.Task(
            task_id=row.task_id,
            session_id=row.session_id,
            state=row.state,
            priority=row.priority,
            pool=row.pool_id,
            max_tokens=row.max_tokens,
            params=wire.TaskParamsOut(**row.params),
            replica_id=row.replica_id,
            engine=row.engine,
            engine_version=row.engine_version,
            tokens_out=lt.tokens_streamed() if lt is not None else row.tokens_out,
            finish_reason=row.finish_reason,
            error=None if row.error is None else wire.TaskError(**row.error),
            attempts=attempts,
            created_at=rfc3339(row.created_ms),
            started_at=rfc3339(row.started_ms),
            finished_at=rfc3339(row.finished_ms),
        )

    def stream(self, task_id: str, after: int) -> StreamSource:
        """The events after ``after``: live, or replayed from storage (ORCH-0083, ORCH-0084)."""
        context = self._context
        lt = context.live.get(task_id)
        if lt is not None:
            source = StreamSource(lt.channel, [])
            pool_id = lt.row.pool_id
        else:
            row = context.store.get_task(task_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
            source = StreamSource(None, context.store.events(task_id, after))
            pool_id = row.pool_id
        if after > 0:
            metrics = context.metrics
            metrics.child(metrics.stream_resumes, pool_id).inc()
        return source

    def pool(self, pool_id: str) -> wire.Pool:
        return _pool(self._context.pool(pool_id))

    def pools(self) -> wire.PoolList:
        return wire.PoolList(pools=[_pool(pool) for pool in self._context.pools.values()])

    def readiness(self) -> dict[str, bool]:
        """Each pool's readiness: at least one ready replica (ORCH-0130)."""
        return {pool_id: pool.ready for pool_id, pool in self._context.pools.items()}


def _pool(pool: Pool) -> wire.Pool:
    config = pool.config
    return wire.Pool(
        pool_id=pool.pool_id,
        ready=pool.ready,
        queue_capacity=config.queue_capacity,
        queue_depth=wire.QueueDepth(
            interactive=pool.queue.depth("interactive"), batch=pool.queue.depth("batch")
        ),
        overflow_policy=config.overflow_policy,
        max_attempts=config.max_attempts,
        batch_share_every=config.batch_share_every,
        decode_timeout_ms=config.decode_timeout_ms,
        replicas=[
            wire.Replica(
                replica_id=r.replica_id,
                engine=r.engine.name,
                engine_version=r.engine.version,
                state=r.state,
                in_flight=r.in_flight,
                slots=r.slots,
            )
            for r in pool.replicas
        ],
    )


def pool_snapshots(pools: Iterable[Pool]) -> list[PoolSnapshot]:
    """What the metrics' state gauges read at each scrape."""
    return [
        PoolSnapshot(
            pool_id=pool.pool_id,
            depth={priority: pool.queue.depth(priority) for priority in PRIORITIES},
            running=pool.running,
            replicas=[(r.replica_id, r.engine.name, r.state) for r in pool.replicas],
        )
        for pool in pools
    ]

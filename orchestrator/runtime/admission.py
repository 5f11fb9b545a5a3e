"""Admitting a task: its session and pool, the queue's verdict, the durable insert.

A task is answered 202 only once its row is committed (ORCH-0045); the insert
joins the store's group commit of the loop turn (docs/design/group-commit.md).
Until then the task may already be dispatched, and its runner waits for the
commit (:meth:`Admitter.committed`): a task whose commit fails was never
admitted, so it never runs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable

from orchestrator.errors import ApiError
from orchestrator.queue import QueueFull
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.pool import Pool
from orchestrator.runtime.sessions import Sessions
from orchestrator.runtime.termination import Termination
from orchestrator.schemas import TaskAdmitted, TaskCreate
from orchestrator.store import StoreError, TaskRow
from orchestrator.vocabulary import ErrorKind, Priority

SERVER_SEED_BITS = 31
"""Seeds the server picks fit in 31 bits, which every engine accepts."""


class Admitter:
    def __init__(
        self, context: RuntimeContext, sessions: Sessions, termination: Termination
    ) -> None:
        self._context = context
        self._sessions = sessions
        self._termination = termination
        self._sequence = 0
        """The last admission's ``admit_seq``: the order of admission across restarts."""
        # A seed the server picks is returned to the client, not a secret: a PRNG seeded
        # from the OS spares each admission a system call.
        self._seeds = random.Random(secrets.randbits(128))
        self._uncommitted: dict[str, asyncio.Future[None]] = {}
        """Admissions whose commit has not landed yet, by task id."""

    def resume_sequence(self) -> None:
        """Continue ``admit_seq`` after the database's last admission (at start)."""
        self._sequence = self._context.store.next_admit_seq()

    async def admit(
        self, body: TaskCreate, *, joined: Callable[[str], None] | None = None
    ) -> TaskAdmitted:
        """Admit a task; returns once it is committed (ORCH-0038..0050, ORCH-0095..0098).

        ``joined(task_id)`` writes what must be committed with the task (a run's step
        attempt), in a transaction of its own that joins the admission's commit.
        """
        context = self._context
        pool = context.pool(body.pool)
        session = self._sessions.active(body.session_id)
        if not pool.ready:
            self._refuse_unready(pool, body.priority)
        task_id = context.new_id("task")
        try:
            place = pool.queue.admit(task_id, body.priority)
        except QueueFull as exc:
            kind = (
                ErrorKind.ADMISSION_REJECT
                if exc.policy == "reject"
                else ErrorKind.QUEUE_FULL_DROP_LRU
            )
            self._count_refusal(pool, body.priority, kind)
            raise ApiError(
                kind,
                f"queue of pool {pool.pool_id!r} is full "
                f"({pool.config.queue_capacity} tasks, overflow policy {exc.policy})",
            ) from None
        params = body.params
        seed = params.seed if params.seed is not None else self._seeds.getrandbits(SERVER_SEED_BITS)
        self._sequence += 1
        row = TaskRow(
            task_id=task_id,
            session_id=session.session_id,
            admit_seq=self._sequence,
            pool_id=pool.pool_id,
            priority=body.priority,
            prompt=body.prompt,
            max_tokens=body.max_tokens,
            params={
                "seed": seed,
                "sampler_profile_version": params.sampler_profile_version,
                "determinism": params.determinism,
                "temperature": params.temperature,
                "top_p": params.top_p,
            },
            seed=seed,
            state="queued",
            replica_id=None,
            engine=None,
            engine_version=None,
            tokens_out=0,
            finish_reason=None,
            error=None,
            created_ms=context.clock.now_ms(),
            started_ms=None,
            finished_ms=None,
        )
        try:
            durable = context.store.insert_task_grouped(row)
        except Exception:
            pool.queue.remove(task_id)
            raise
        context.live.add_queued(row)
        self._uncommitted[task_id] = durable
        if place.evicted is not None:
            self._termination.drop(place.evicted)
        pool.schedule()
        try:
            if joined is not None:
                joined(task_id)
            await durable
        except StoreError:
            # Never acknowledged, so never admitted: take it back out. A runner
            # already started for it sees the failed commit and stops.
            pool.queue.remove(task_id)
            context.live.pop(task_id)
            raise
        finally:
            del self._uncommitted[task_id]
        metrics = context.metrics
        metrics.child(metrics.tasks_admitted, pool.pool_id, body.priority).inc()
        return TaskAdmitted(
            task_id=task_id,
            session_id=session.session_id,
            state="queued",
            priority=body.priority,
            pool=pool.pool_id,
            queue_position=place.position,
            seed=seed,
            stream_url=f"/v1/tasks/{task_id}/stream",
        )

    async def committed(self, task_id: str) -> bool:
        """Wait for ``task_id``'s admission to be committed; False if it never will be."""
        durable = self._uncommitted.get(task_id)
        if durable is None:
            return True
        try:
            await asyncio.shield(durable)
        except StoreError:
            return False
        return True

    def _refuse_unready(self, pool: Pool, priority: Priority) -> None:
        """503 for a pool with no ready replica (ORCH-0048, ORCH-0049, ORCH-0245, ORCH-0246)."""
        if pool.warming and not pool.draining:
            kind = ErrorKind.POOL_UNREADY
            message = f"pool {pool.pool_id!r} is warming up"
            wait_ms: int | None = max(1, pool.warmup_remaining_ms())
        else:
            kind = ErrorKind.POOL_UNAVAILABLE
            message = f"pool {pool.pool_id!r} has no healthy replica"
            wait_ms = None  # the kind's fixed wait
        self._count_refusal(pool, priority, kind)
        raise ApiError(kind, message, backoff_ms=wait_ms)

    def _count_refusal(self, pool: Pool, priority: Priority, kind: ErrorKind) -> None:
        metrics = self._context.metrics
        metrics.child(metrics.tasks_rejected, pool.pool_id, priority, kind.value).inc()

"""Replicas and the dispatch of one pool.

Scheduling is a synchronous function run on every change (admission, a slot
freed, a replica became ready, a cancel): no dispatcher task to wake, and no
window where a free slot and a queued task coexist. Retries of running tasks
wait for slots ahead of the queue, because they were admitted earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config import PoolConfig, ReplicaConfig
from orchestrator.engines import Engine, EngineError, build_engine
from orchestrator.queue import PoolQueue
from orchestrator.vocabulary import ReplicaState

log = logging.getLogger("orchestrator.pool")

DOWN_RETRY_S = 2.0
"""How often a ``down`` replica is probed again."""


class Replica:
    def __init__(self, config: ReplicaConfig, engine: Engine) -> None:
        self.config = config
        self.replica_id = config.replica_id
        self.engine = engine
        self.slots = config.slots
        self.in_flight = 0
        self.state: ReplicaState = "warming"
        self.ready_at_estimate = time.monotonic() + config.warmup_ms / 1000

    def has_free_slot(self) -> bool:
        return self.state == "ready" and self.in_flight < self.slots


@dataclass
class _SlotWaiter:
    avoid: frozenset[str]
    prefer: str | None
    future: asyncio.Future[Replica] = field(repr=False)


class Pool:
    def __init__(
        self,
        config: PoolConfig,
        on_dispatch: Callable[[str, Replica], None],
        engine_factory: Callable[[ReplicaConfig], Engine] = build_engine,
        may_dispatch: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self.pool_id = config.pool_id
        self.queue = PoolQueue(
            config.queue_capacity, config.overflow_policy, config.batch_share_every
        )
        self.replicas = [Replica(rc, engine_factory(rc)) for rc in config.replicas]
        self._on_dispatch = on_dispatch
        self._may_dispatch = may_dispatch
        """False pauses the queue (running tasks and retries go on): see the Journal."""
        self._waiters: list[_SlotWaiter] = []
        self._health_tasks: set[asyncio.Task[None]] = set()
        self._rotation = 0
        self.draining = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> list[asyncio.Task[None]]:
        """Warm every replica up in the background; returns the warm-up tasks."""
        return [self._spawn(self._bring_up(replica)) for replica in self.replicas]

    async def stop(self) -> None:
        self.draining = True
        for replica in self.replicas:
            replica.state = "draining"
        for task in list(self._health_tasks):
            task.cancel()
        for task in list(self._health_tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            waiter.future.cancel()
        self._waiters.clear()
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                await replica.engine.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._health_tasks.add(task)
        task.add_done_callback(self._health_tasks.discard)
        return task

    async def _bring_up(self, replica: Replica) -> None:
        # A configured warm-up holds every engine's replica warming for warmup_ms after
        # the start (the end ORCH-0246's suggested wait counts down to), then it is probed.
        await asyncio.sleep(max(0.0, replica.ready_at_estimate - time.monotonic()))
        while not self.draining:
            try:
                await replica.engine.warmup()
            except EngineError as exc:
                if replica.state != "down":
                    log.warning("replica %s is down: %s", replica.replica_id, exc)
                replica.state = "down"
                await asyncio.sleep(DOWN_RETRY_S)
                continue
            replica.state = "ready"
            self.schedule()
            return

    def mark_down(self, replica: Replica) -> None:
        """The engine is unreachable: stop routing to it and probe it until it is back."""
        if replica.state == "ready":
            replica.state = "down"
            self._spawn(self._bring_up(replica))
            self.schedule()  # retries waiting to avoid other replicas may now take this one

    # ------------------------------------------------------------ readiness

    @property
    def ready(self) -> bool:
        return not self.draining and any(r.state == "ready" for r in self.replicas)

    @property
    def warming(self) -> bool:
        return any(r.state == "warming" for r in self.replicas)

    def warmup_remaining_ms(self) -> int:
        now = time.monotonic()
        pending = [r.ready_at_estimate - now for r in self.replicas if r.state == "warming"]
        return max(0, int(min(pending) * 1000)) if pending else 0

    @property
    def running(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    # ------------------------------------------------------------ slots

    def _pick(
        self, avoid: frozenset[str] = frozenset(), prefer: str | None = None
    ) -> Replica | None:
        free = [r for r in self.replicas if r.has_free_slot()]
        if not free:
            return None
        if prefer is not None:
            for replica in free:
                if replica.replica_id == prefer:
                    return replica
        if avoid:
            others_exist = any(
                r.state == "ready" and r.replica_id not in avoid for r in self.replicas
            )
            if others_exist:
                free = [r for r in free if r.replica_id not in avoid]
                if not free:
                    return None
        # Least loaded; ties rotate so consecutive tasks alternate replicas.
        least = min(r.in_flight for r in free)
        candidates = [r for r in free if r.in_flight == least]
        choice = candidates[self._rotation % len(candidates)]
        self._rotation += 1
        return choice

    def schedule(self) -> None:
        """Hand free slots to waiting retries first, then to the queue (unless it is paused)."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            replica = self._pick(waiter.avoid, waiter.prefer)
            if replica is None:
                continue
            replica.in_flight += 1
            self._waiters.remove(waiter)
            waiter.future.set_result(replica)
        while len(self.queue) and self._may_dispatch():
            replica = self._pick()
            if replica is None:
                return
            task_id = self.queue.pop()
            assert task_id is not None
            replica.in_flight += 1
            self._on_dispatch(task_id, replica)

    async def acquire(
        self, avoid: frozenset[str] = frozenset(), prefer: str | None = None
    ) -> Replica:
        """A slot for a retry (or a recovered task), ahead of queued work."""
        replica = self._pick(avoid, prefer)
        if replica is not None:
            replica.in_flight += 1
            return replica
        waiter = _SlotWaiter(avoid, prefer, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result())
            raise

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self.schedule()

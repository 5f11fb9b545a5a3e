"""The orchestrator: orchestratord's runtime behind one face, the one the API calls.

Each operation is one part's job, and the parts share a :class:`RuntimeContext`:

- :class:`Sessions` create, read, end and purge sessions;
- :class:`Admitter` admits tasks into their pool's queue;
- :class:`Executor` runs dispatched tasks: slots, attempts, retries, tokens;
- :class:`Termination` ends tasks, cancellations included;
- :class:`Views` builds what readers see: tasks, streams, pools;
- :func:`recover` resumes, at start, what the last process left live;
- :class:`Runs` registers run definitions and runs their steps as tasks.

This class owns the lifecycle (start, stop, the janitor) and wires the parts.
Everything runs on one event loop. State lives in two places kept in step:
SQLite, the truth across restarts, and a :class:`LiveTask` per queued or
running task, the truth for streaming; what a running task changes is shown
only once the journal has committed it (docs/design/event-durability.md).
A new kind of work is a part of its own beside these, reached through this
face (docs/design/runtime.md), as multi-step runs are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, cast

from orchestrator.config import Config, ReplicaConfig
from orchestrator.engines import Engine, build_engine
from orchestrator.metrics import Metrics
from orchestrator.runs import ParsedDefinition
from orchestrator.runtime import audit, checkpoints
from orchestrator.runtime.admission import Admitter
from orchestrator.runtime.clock import Clock
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.definitions import Definitions
from orchestrator.runtime.execution import Executor
from orchestrator.runtime.journal import Journal
from orchestrator.runtime.pool import Pool
from orchestrator.runtime.recovery import recover
from orchestrator.runtime.runs import Runs
from orchestrator.runtime.sessions import Sessions
from orchestrator.runtime.starts import AttemptStarts
from orchestrator.runtime.streams import StreamSource
from orchestrator.runtime.tasks import LiveTasks
from orchestrator.runtime.termination import Termination
from orchestrator.runtime.views import Views, pool_snapshots
from orchestrator.runtime.webhooks import Webhooks
from orchestrator.schemas import (
    Approval,
    ApprovalList,
    AuditLog,
    CheckpointDecision,
    Definition,
    DefinitionList,
    PoolList,
    Routing,
    Run,
    RunCreate,
    RunList,
    SessionCreate,
    SessionCreated,
    SessionInfo,
    Task,
    TaskAdmitted,
    TaskCreate,
)
from orchestrator.schemas import Pool as PoolView
from orchestrator.store import Store
from orchestrator.store.lock import DatabaseLock
from orchestrator.vocabulary import CheckpointState, FallbackMode, RunState

log = logging.getLogger("orchestrator")

FALLBACK_MODE_KEY = "routing.fallback_mode"
"""The setting that persists the routing mode across restarts (ORCH-0127)."""
JANITOR_INTERVAL_S = 60.0
STARTUP_READY_GRACE_S = 0.25
"""How long start waits for replicas that are ready at once (mock, a local engine)."""


class Orchestrator:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        engine_factory: Callable[[ReplicaConfig], Engine] = build_engine,
        database_lock: DatabaseLock | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or Clock()
        self._lock = database_lock or DatabaseLock(config.database)
        """Taken at start, for as long as this serves: one server per database (ORCH-0174)."""
        self._engine_factory = engine_factory
        pools: dict[str, Pool] = {}
        metrics = Metrics(
            functools.partial(pool_snapshots, pools.values()),
            cache_children=config.tuning.metric_children_cache,
        )
        context = self._context = RuntimeContext(config, self.clock, pools, metrics)
        self._starts = AttemptStarts(context)
        self._termination = Termination(context, self._starts)
        self._sessions = Sessions(context, self._starts, self._termination)
        self._admitter = Admitter(context, self._sessions, self._termination)
        self._executor = Executor(context, self._starts, self._termination, self._admitter)
        self._views = Views(context, self._starts)
        self._definitions = Definitions(context)
        self._runs = Runs(
            context, self._sessions, self._admitter, self._termination, self._definitions
        )
        self._webhooks = Webhooks(context)
        self._background: set[asyncio.Task[None]] = set()
        self.started = False

    # ------------------------------------------------------------ what the parts share

    @property
    def store(self) -> Store:
        return self._context.store

    @property
    def journal(self) -> Journal:
        return self._context.journal

    @property
    def live(self) -> LiveTasks:
        return self._context.live

    @property
    def metrics(self) -> Metrics:
        return self._context.metrics

    @property
    def pools(self) -> dict[str, Pool]:
        return self._context.pools

    @property
    def fallback_mode(self) -> FallbackMode:
        return self._context.fallback_mode

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the database, recover what it left live, warm the replicas up."""
        context = self._context
        self._lock.acquire()
        tuning = self.config.tuning
        store = Store(
            self.config.database,
            compact_json=tuning.compact_json,
        )
        if tuning.background_checkpoint:
            store.checkpoint_in_background()
        journal = Journal(store, before_write=self._starts.write_all, on_recovered=self._schedule)
        context.attach(store, journal)
        self._webhooks.start()  # before anything can write a run event (ORCH-0406)
        persisted = store.get_setting(FALLBACK_MODE_KEY)
        if persisted is not None:  # written by set_fallback_mode alone
            context.fallback_mode = cast(FallbackMode, persisted)
        self._admitter.resume_sequence()
        for pool_config in self.config.pools:
            context.pools[pool_config.pool_id] = Pool(
                pool_config,
                on_dispatch=self._executor.dispatcher(pool_config.pool_id),
                engine_factory=self._engine_factory,
                may_dispatch=lambda: not journal.failing,
            )
        recover(context, self._executor, self._termination)
        journal.commit_now()  # recovery's outcomes are durable before anything is served
        warmups = [task for pool in context.pools.values() for task in pool.start()]
        # Replicas that are ready at once should be ready before the first request;
        # slow warm-ups go on in the background.
        await asyncio.wait(warmups, timeout=STARTUP_READY_GRACE_S)
        self._definitions.load_folder()
        self._runs.resume()
        self._spawn(self._janitor())
        self.started = True

    async def stop(self) -> None:
        """Stop serving; running tasks stay ``running`` in the database and recover on restart."""
        context = self._context
        for pool in context.pools.values():
            pool.draining = True
            for replica in pool.replicas:
                replica.state = "draining"
        self._runs.stop()
        await self._webhooks.stop()
        runners = [lt.runner for lt in context.live.made() if lt.runner is not None]
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in context.pools.values():
            await pool.stop()
        for lt in context.live.made():
            lt.channel.close()
        store, journal = context.detach()
        if journal is not None:
            await journal.stop()
        if store is not None:
            store.close()
        self._lock.release()
        self.started = False

    def _schedule(self) -> None:
        for pool in self._context.pools.values():
            pool.schedule()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _janitor(self) -> None:
        """Purge sessions ended or expired longer than ``retention_seconds`` ago (ORCH-0036)."""
        while True:
            await asyncio.sleep(JANITOR_INTERVAL_S)
            cutoff = self.clock.now_ms() - self.config.retention_seconds * 1000
            try:
                purged = self._sessions.purge(cutoff)
            except Exception:
                log.exception("purging old sessions failed")
                continue
            if purged:
                log.info("purged %d ended or expired sessions", purged)

    # ------------------------------------------------------------ the API's operations

    def create_session(self, body: SessionCreate) -> SessionCreated:
        return self._sessions.create(body)

    def get_session(self, session_id: str) -> SessionInfo:
        return self._sessions.info(session_id)

    def delete_session(self, session_id: str) -> None:
        self._sessions.end(session_id)

    async def admit(self, body: TaskCreate) -> TaskAdmitted:
        """Admit a task; returns once it is committed."""
        return await self._admitter.admit(body)

    def get_task(self, task_id: str) -> Task:
        return self._views.task(task_id)

    def cancel_task(self, task_id: str) -> Task:
        self._termination.cancel_task(task_id)
        return self._views.task(task_id)

    def open_stream(self, task_id: str, after: int) -> StreamSource:
        return self._views.stream(task_id, after)

    def pool_view(self, pool_id: str) -> PoolView:
        return self._views.pool(pool_id)

    def pools_view(self) -> PoolList:
        return self._views.pools()

    def readiness(self) -> dict[str, bool]:
        return self._views.readiness()

    def routing(self) -> Routing:
        return Routing(fallback_mode=self._context.fallback_mode)

    def set_fallback_mode(self, mode: FallbackMode) -> Routing:
        """Persist the routing mode (ORCH-0125, ORCH-0127)."""
        self.store.put_setting(FALLBACK_MODE_KEY, mode)
        self._context.fallback_mode = mode
        return self.routing()

    # ------------------------------------------------------------ runs (spec section 12)

    def register_definition(self, parsed: ParsedDefinition) -> tuple[Definition, bool]:
        return self._definitions.register(parsed)

    def get_definition(self, name: str, version: str) -> Definition:
        return self._definitions.definition(name, version)

    def list_definitions(self) -> DefinitionList:
        return self._definitions.definitions()

    def create_run(self, body: RunCreate, actor: str) -> Run:
        return self._runs.create(body, actor)

    def get_run(self, run_id: str) -> Run:
        return self._runs.get(run_id)

    def list_runs(
        self,
        *,
        state: RunState | None,
        definition: str | None,
        created_after: str | None,
        created_before: str | None,
        cursor: str | None,
        limit: int,
    ) -> RunList:
        return self._runs.listing(
            state=state,
            definition=definition,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit,
        )

    def abort_run(self, run_id: str, actor: str) -> Run:
        return self._runs.abort(run_id, actor)

    def decide_checkpoint(
        self, run_id: str, checkpoint_id: str, body: CheckpointDecision
    ) -> Approval:
        return self._runs.decide(run_id, checkpoint_id, body)

    def list_approvals(
        self,
        *,
        state: CheckpointState | None,
        run_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> ApprovalList:
        return checkpoints.approvals(
            self._context.store, state=state, run_id=run_id, cursor=cursor, limit=limit
        )

    def run_audit(self, run_id: str) -> AuditLog:
        return audit.run_audit(self._context.store, run_id)

    def open_run_stream(self, run_id: str, after: int) -> StreamSource:
        return self._runs.stream(run_id, after)

    # ------------------------------------------------------------ webhooks (spec section 12.9)

    @property
    def webhooks(self) -> Webhooks:
        """Subscriptions, the delivery log and the delivery loop."""
        return self._webhooks

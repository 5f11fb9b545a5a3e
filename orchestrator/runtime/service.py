"""The orchestrator: sessions, admission, task execution, cancellation and recovery.

Everything here runs on one event loop. State lives in two places kept in step:
SQLite (the truth across restarts) and :class:`LiveTask` objects for queued and
running tasks (the truth for streaming). What a running task changes is queued
in the :class:`Journal` and shown (stream events revealed, a finished task
published) only once its commit has landed. Every runner is supervised: an
unexpected exception is logged and fails its task with ``INTERNAL`` (ORCH-0173).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from orchestrator.compact_json import dumps_text
from orchestrator.config import Config, ReplicaConfig
from orchestrator.engines import (
    Engine,
    EngineError,
    EngineRateLimited,
    EngineUnavailable,
    Token,
    build_engine,
)
from orchestrator.engines.base import finish_reason
from orchestrator.errors import ApiError, task_error
from orchestrator.metrics import Metrics, PoolSnapshot
from orchestrator.queue import PastDispatch, QueueFull, derive_streak
from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.clock import Clock, rfc3339, sleep_at_least
from orchestrator.runtime.journal import Journal
from orchestrator.runtime.pool import Pool, Replica
from orchestrator.runtime.tasks import LiveTask, LiveTasks
from orchestrator.runtime.watchdog import DecodeWatchdog
from orchestrator.schemas import SessionCreate, TaskCreate
from orchestrator.store import AttemptRow, EventRow, SessionRow, Store, StoreError, TaskRow
from orchestrator.store.lock import DatabaseLock
from orchestrator.vocabulary import ErrorKind

log = logging.getLogger("orchestrator")

FALLBACK_MODE_KEY = "routing.fallback_mode"
ADMISSION_BACKOFF_MS = 1000
UNAVAILABLE_BACKOFF_MS = 2000
JANITOR_INTERVAL_S = 60.0
STARTUP_READY_GRACE_S = 0.25
SESSION_CACHE_SIZE = 4096
MAX_SERVER_SEED = 2**31
"""Seeds the server picks fit in 31 bits, which every engine accepts."""

# attempts[].error_kind values beyond the task error kinds
ENGINE_RATE_LIMITED = "ENGINE_RATE_LIMITED"
ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"


@dataclass(frozen=True)
class _Failure:
    """Why an attempt ended without completing."""

    attempt_kind: str
    message: str
    terminal: ErrorKind | None = None
    """Set when no retry may follow, whatever attempts remain."""
    retry_after_s: float | None = None
    """Set for an engine 429."""


def _new_id(prefix: str) -> str:
    """Opaque, unguessable, and increasing with time.

    The millisecond prefix makes inserts land at the right edge of the primary
    key B-tree instead of at random pages, which halved the insert cost under a
    deep queue; 64 random bits keep IDs unguessable (``secrets.token_hex`` is
    this ``os.urandom`` behind two more Python calls, on every admission).
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


class _AttemptMeters:
    """The labelled metric children one attempt updates per token, resolved once."""

    def __init__(self, metrics: Metrics, pool_id: str, engine: str) -> None:
        self.generated_tokens = metrics.child(metrics.generated_tokens, pool_id, engine)
        self.time_to_first_token = metrics.child(metrics.time_to_first_token, pool_id)
        self.inter_token_latency = metrics.child(metrics.inter_token_latency, pool_id)


class StreamSource:
    """What a stream reader follows: a live channel, or the persisted events of a finished task."""

    def __init__(self, channel: TaskChannel | None, replay: list[EventRow]) -> None:
        self.channel = channel
        self.replay = replay

    async def batches(self, after: int, ping_s: float) -> AsyncIterator[list[EventRow] | None]:
        """Yield lists of events after ``after``; ``None`` asks the caller to send a ping."""
        if self.channel is None:
            if self.replay:
                yield self.replay
            return
        channel, seq = self.channel, after
        while True:
            if channel.last_seq > seq:
                batch = channel.events[seq : channel.last_seq]
                seq = channel.last_seq
                yield batch
            elif channel.closed:
                return
            elif not await channel.wait_beyond(seq, ping_s):
                yield None


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
        self._lock = database_lock or DatabaseLock(config.database)
        """Held while serving (one server per database); a caller may take it first."""
        self.clock = clock or Clock()
        self._engine_factory = engine_factory
        self.pools: dict[str, Pool] = {}
        self.live = LiveTasks()
        self.metrics = Metrics(self._snapshot)
        self.fallback_mode: str = config.fallback_mode
        self._store: Store | None = None
        self._journal: Journal | None = None
        self._admit_seq = 0
        # Server-chosen seeds are returned to the client, not secret: a PRNG seeded
        # from the OS spares admission a getrandom() call per task.
        self._seeds = random.Random(secrets.randbits(128))
        self._sessions: OrderedDict[str, SessionRow] = OrderedDict()
        self._unrecorded: dict[str, LiveTask] = {}
        """Running tasks whose attempt start is not written yet (see _write_pending_start)."""
        self._admitting: dict[str, asyncio.Future[None]] = {}
        """Admissions not committed yet: a runner started meanwhile waits for its task's."""
        self._background: set[asyncio.Task[None]] = set()
        self.started = False

    # ------------------------------------------------------------ lifecycle

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("orchestrator is not started")
        return self._store

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("orchestrator is not started")
        return self._journal

    async def start(self) -> None:
        self._lock.acquire()
        self._store = Store(self.config.database)
        self._store.checkpoint_in_background()
        self._journal = Journal(
            self._store,
            before_write=self._write_pending_starts,
            on_recovered=self._schedule_pools,
        )
        persisted = self.store.get_setting(FALLBACK_MODE_KEY)
        if persisted is not None:
            self.fallback_mode = persisted
        self._admit_seq = self.store.next_admit_seq()
        for pool_config in self.config.pools:
            self.pools[pool_config.pool_id] = Pool(
                pool_config,
                on_dispatch=self._make_dispatcher(pool_config.pool_id),
                engine_factory=self._engine_factory,
                may_dispatch=self._may_dispatch,
            )
        self._recover()
        self.journal.commit_now()  # recovery's outcomes are durable before anything is served
        warmups = [task for pool in self.pools.values() for task in pool.start()]
        # Replicas that are ready at once (mock, a local engine) should be ready
        # before the first request; slow warm-ups go on in the background.
        await asyncio.wait(warmups, timeout=STARTUP_READY_GRACE_S)
        self._spawn(self._janitor())
        self.started = True

    async def stop(self) -> None:
        """Stop serving; running tasks stay ``running`` in the database and recover on restart."""
        for pool in self.pools.values():
            pool.draining = True
            for replica in pool.replicas:
                replica.state = "draining"
        runners = [lt.runner for lt in self.live.made() if lt.runner is not None]
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in self.pools.values():
            await pool.stop()
        for lt in self.live.made():
            lt.channel.close()
        if self._journal is not None:
            await self._journal.stop()
        if self._store is not None:
            self._store.close()
        self._lock.release()
        self.started = False

    def _may_dispatch(self) -> bool:
        """No new attempt starts while the database cannot be written (see Journal)."""
        return self._journal is None or not self._journal.failing

    def _schedule_pools(self) -> None:
        for pool in self.pools.values():
            pool.schedule()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(JANITOR_INTERVAL_S)
            cutoff = self.clock.now_ms() - self.config.retention_seconds * 1000
            try:
                purged = self.store.purge_sessions(cutoff)
            except Exception:
                log.exception("purging old sessions failed")
                continue
            if purged:
                log.info("purged %d ended or expired sessions", purged)
                for session_id, row in list(self._sessions.items()):
                    if row.expires_ms < cutoff:
                        del self._sessions[session_id]

    # ------------------------------------------------------------ recovery

    def _recover(self) -> None:
        """Resume every task that was queued or running when the process last stopped.

        Each pool's fairness streak is derived from the persisted dispatches
        first, so the batch share window continues across the restart
        (ORCH-0090 with ORCH-0140; reasoning in ``orchestrator.queue.fairness``).
        """
        for configured in self.pools.values():
            every = configured.queue.batch_share_every
            past = [
                PastDispatch(
                    "batch" if row.priority == "batch" else "interactive", row.batch_waiting
                )
                for row in self.store.recent_dispatches(configured.pool_id, every - 1)
            ]
            configured.queue.restore_streak(derive_streak(past, every))
        for row in self.store.live_tasks():
            events = self.store.events(row.task_id)
            lt = self._live_task(row, events)
            self.live[row.task_id] = lt
            pool = self.pools.get(row.pool_id)
            if pool is None:
                self._finish(
                    lt,
                    "failed",
                    error=task_error(
                        ErrorKind.POOL_UNAVAILABLE, f"pool {row.pool_id!r} is no longer configured"
                    ),
                )
                continue
            if row.state == "queued":
                pool.queue.restore(row.task_id, row.priority)  # type: ignore[arg-type]
                continue
            attempts = self.store.attempts(row.task_id)
            lt.attempts = len(attempts)
            now = self.clock.now_ms()
            for attempt in attempts:
                if attempt.state == "running":
                    self._finish_attempt(row.task_id, attempt.attempt, ErrorKind.WORKER_RESET, now)
            failure = _Failure(ErrorKind.WORKER_RESET.value, "orchestrator restarted mid-decode")
            terminal = self._terminal_after(lt, pool, failure)
            if terminal is not None:
                self._finish(lt, "failed", error=terminal)
            else:
                self._start_runner(lt, pool, None)

    def _finish_attempt(self, task_id: str, number: int, kind: str, now: int) -> None:
        self.journal.write(lambda: self.store.finish_attempt(task_id, number, "failed", kind, now))

    def _live_task(self, row: TaskRow, events: list[EventRow] | None = None) -> LiveTask:
        return LiveTask.resumed(row, events) if events else LiveTask(row=row)

    # ------------------------------------------------------------ sessions

    def create_session(self, body: SessionCreate) -> dict[str, Any]:
        now = self.clock.now_ms()
        row = SessionRow(
            session_id=_new_id("sess"),
            ttl_seconds=body.ttl_seconds,
            metadata=body.metadata,
            created_ms=now,
            expires_ms=now + body.ttl_seconds * 1000,
            ended_ms=None,
        )
        self.store.insert_session(row)
        self._remember_session(row)
        return self._session_view(row)

    def _session_view(self, row: SessionRow) -> dict[str, Any]:
        return {
            "session_id": row.session_id,
            "ttl_seconds": row.ttl_seconds,
            "created_at": rfc3339(row.created_ms),
            "expires_at": rfc3339(row.expires_ms),
            "metadata": row.metadata,
        }

    def _open_session(self, session_id: str) -> SessionRow:
        row = self._sessions.get(session_id)
        if row is None:
            row = self.store.get_session(session_id)
            if row is None or row.ended_ms is not None:
                raise ApiError(ErrorKind.NOT_FOUND, f"session {session_id!r} not found")
            self._remember_session(row)
        return row

    def _remember_session(self, row: SessionRow) -> None:
        """Open sessions are immutable until ended, and only this process ends them."""
        self._sessions[row.session_id] = row
        if len(self._sessions) > SESSION_CACHE_SIZE:
            self._sessions.popitem(last=False)

    def _expired(self, row: SessionRow) -> bool:
        return self.clock.now_ms() >= row.expires_ms

    def get_session(self, session_id: str) -> dict[str, Any]:
        row = self._open_session(session_id)
        if self._expired(row):
            raise ApiError(ErrorKind.SESSION_EXPIRED, f"session {session_id!r} has expired")
        view = self._session_view(row)
        view["ttl_remaining_ms"] = max(0, row.expires_ms - self.clock.now_ms())
        for lt in [lt for lt in self._unrecorded.values() if lt.row.session_id == session_id]:
            self._write_pending_start(lt)
        self.journal.commit_if_possible()
        view["tasks"] = self.store.session_task_counts(session_id)
        return view

    def delete_session(self, session_id: str) -> None:
        self._open_session(session_id)
        self.store.end_session(session_id, self.clock.now_ms())
        self._sessions.pop(session_id, None)
        for lt in self.live.of_session(session_id):
            self._cancel(lt, "session ended")
        self.journal.commit_now()

    # ------------------------------------------------------------ admission

    async def admit(self, body: TaskCreate) -> dict[str, Any]:
        """Admit a task; returns once it is committed (group commit with concurrent admissions)."""
        pool = self.pools.get(body.pool)
        if pool is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"pool {body.pool!r} not found")
        session = self._open_session(body.session_id)
        if self._expired(session):
            raise ApiError(ErrorKind.SESSION_EXPIRED, f"session {body.session_id!r} has expired")
        if not pool.ready:
            self._refuse_unready(pool, body.priority)
        task_id = _new_id("task")
        try:
            admission = pool.queue.admit(task_id, body.priority)
        except QueueFull as exc:
            kind = (
                ErrorKind.ADMISSION_REJECT
                if exc.policy == "reject"
                else ErrorKind.QUEUE_FULL_DROP_LRU
            )
            self.metrics.child(
                self.metrics.tasks_rejected, pool.pool_id, body.priority, kind.value
            ).inc()
            raise ApiError(
                kind,
                f"queue of pool {pool.pool_id!r} is full "
                f"({pool.config.queue_capacity} tasks, overflow policy {exc.policy})",
                backoff_ms=ADMISSION_BACKOFF_MS,
            ) from None
        params = body.params
        seed = params.seed if params.seed is not None else self._seeds.randrange(MAX_SERVER_SEED)
        self._admit_seq += 1
        now = self.clock.now_ms()
        row = TaskRow(
            task_id=task_id,
            session_id=session.session_id,
            admit_seq=self._admit_seq,
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
            created_ms=now,
            started_ms=None,
            finished_ms=None,
        )
        try:
            durable = self.store.insert_task_grouped(row)
        except Exception:
            pool.queue.remove(task_id)
            raise
        self.live.add_queued(row)
        self._admitting[task_id] = durable
        if admission.evicted is not None:
            self._drop(admission.evicted)
        pool.schedule()
        try:
            await durable
        except StoreError:
            # Never acknowledged, so never admitted: take it back out. A runner
            # already started for it sees the failed admission and stops.
            pool.queue.remove(task_id)
            self.live.pop(task_id)
            raise
        finally:
            del self._admitting[task_id]
        self.metrics.child(self.metrics.tasks_admitted, pool.pool_id, body.priority).inc()
        return {
            "task_id": task_id,
            "session_id": session.session_id,
            "state": "queued",
            "priority": body.priority,
            "pool": pool.pool_id,
            "queue_position": admission.position,
            "seed": seed,
            "stream_url": f"/v1/tasks/{task_id}/stream",
        }

    def _refuse_unready(self, pool: Pool, priority: str) -> None:
        if pool.warming and not pool.draining:
            kind = ErrorKind.POOL_UNREADY
            message = f"pool {pool.pool_id!r} is warming up"
            backoff = max(1, pool.warmup_remaining_ms())
        else:
            kind = ErrorKind.POOL_UNAVAILABLE
            message = f"pool {pool.pool_id!r} has no healthy replica"
            backoff = UNAVAILABLE_BACKOFF_MS
        self.metrics.child(self.metrics.tasks_rejected, pool.pool_id, priority, kind.value).inc()
        raise ApiError(kind, message, backoff_ms=backoff)

    def _drop(self, task_id: str) -> None:
        lt = self.live[task_id]
        self.metrics.child(self.metrics.tasks_dropped, lt.row.pool_id, lt.row.priority).inc()
        self._finish(
            lt,
            "dropped",
            error=task_error(
                ErrorKind.QUEUE_FULL_DROP_LRU,
                "evicted from a full queue (overflow policy drop_lru)",
            ),
        )

    # ------------------------------------------------------------ execution

    def _make_dispatcher(self, pool_id: str) -> Callable[[str, Replica], None]:
        def dispatch(task_id: str, replica: Replica) -> None:
            pool = self.pools[pool_id]
            lt = self.live[task_id]
            self.metrics.child(self.metrics.queue_wait, pool_id, lt.row.priority).observe(
                time.monotonic() - lt.admitted_at
            )
            self._start_runner(lt, pool, replica)

        return dispatch

    def _start_runner(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        """Run a task; its replica slot is released when the runner ends, however it ends."""
        lt.held = replica
        runner = asyncio.create_task(self._supervised(lt, pool, replica))
        runner.add_done_callback(lambda _task: self._release(lt, pool))
        lt.runner = runner

    async def _supervised(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        """Run the task; an unexpected exception fails it with INTERNAL, never silently."""
        admission = self._admitting.get(lt.task_id)
        if admission is not None:
            try:
                await asyncio.shield(admission)
            except StoreError:
                return  # never admitted (the admission answers the error)
        try:
            await self._run(lt, pool, replica)
        except Exception:
            log.exception("running task %s failed", lt.task_id)
            self._finish(
                lt,
                "failed",
                error=task_error(
                    ErrorKind.INTERNAL, "the orchestrator failed while running the task"
                ),
            )

    def _release(self, lt: LiveTask, pool: Pool) -> None:
        replica, lt.held = lt.held, None
        if replica is not None:
            pool.release(replica)

    async def _run(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        avoid: set[str] = set()
        prefer: str | None = None
        while True:
            if replica is None:
                replica = await pool.acquire(frozenset(avoid), prefer)
                lt.held = replica
            failure = await self._attempt(lt, pool, replica)
            if failure is None:
                return
            terminal = self._terminal_after(lt, pool, failure)
            if terminal is not None:
                self._finish(lt, "failed", error=terminal)
                return
            self._release(lt, pool)
            if failure.retry_after_s is not None and self.fallback_mode == "intelligent_pacing":
                await sleep_at_least(failure.retry_after_s)
                avoid, prefer = set(), replica.replica_id
            else:
                avoid.add(replica.replica_id)
                prefer = None
            replica = None

    def _terminal_after(self, lt: LiveTask, pool: Pool, failure: _Failure) -> dict[str, Any] | None:
        """The task error if this failure ends the task, or None if a retry may follow."""
        if failure.terminal is not None:
            return task_error(failure.terminal, failure.message)
        if lt.sent and not lt.strict:
            return task_error(
                ErrorKind.WORKER_RESET,
                f"{failure.message}; {len(lt.sent)} tokens were already sent and "
                "best_effort tasks are not replayed",
            )
        if lt.attempts >= pool.config.max_attempts:
            return task_error(
                ErrorKind.REPLICA_EXHAUSTED,
                f"all {pool.config.max_attempts} attempts failed; last: {failure.message}",
            )
        return None

    async def _attempt(self, lt: LiveTask, pool: Pool, replica: Replica) -> _Failure | None:
        lt.attempts += 1
        number = lt.attempts
        now = self.clock.now_ms()
        row = lt.row
        fields: dict[str, Any] = {
            "state": "running",
            "replica_id": replica.replica_id,
            "engine": replica.engine.name,
            "engine_version": replica.engine.version,
        }
        if row.started_ms is None:
            fields["started_ms"] = now
        lt.pending_start = (
            AttemptRow(row.task_id, number, replica.replica_id, "running", None, now, None),
            fields,
        )
        self._unrecorded[row.task_id] = lt
        lt.attempt_open = number
        for name, value in fields.items():
            setattr(row, name, value)

        tokens = replica.engine.generate(lt.request).__aiter__()
        try:
            failure = await self._decode(lt, pool, replica, tokens)
            outcome = "completed" if failure is None else "failed"
            self.metrics.child(
                self.metrics.attempts, pool.pool_id, replica.replica_id, outcome
            ).inc()
            lt.attempt_open = None
            if failure is None:
                if not lt.started_sent:  # the engine stopped at once: `started` goes with `end`
                    self._emit_started(lt, replica)
                reason = finish_reason(len(lt.sent), row.max_tokens)
                self._finish(
                    lt, "completed", finish_reason=reason, attempt=(number, "completed", None)
                )
                return None
            self._write_pending_start(lt)
            self._finish_attempt(row.task_id, number, failure.attempt_kind, self.clock.now_ms())
            if failure.attempt_kind == ENGINE_UNAVAILABLE:
                pool.mark_down(replica)
            return failure
        finally:
            aclose = getattr(tokens, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _decode(
        self, lt: LiveTask, pool: Pool, replica: Replica, tokens: AsyncIterator[Token]
    ) -> _Failure | None:
        """Stream one attempt's tokens; returns without yielding after the last one.

        Tokens go to the journal, which commits them at the end of the loop turn
        and only then shows them to readers; a task that ends within the turn
        of its last token commits its tokens, outcome and attempt in one go.
        """
        rid = replica.replica_id
        meters = _AttemptMeters(self.metrics, pool.pool_id, replica.engine.name)
        watchdog = DecodeWatchdog(pool.config.decode_timeout_ms / 1000)
        index = 0
        try:
            while index < lt.request.max_tokens:
                try:
                    token = await anext(tokens)
                    watchdog.progress()
                except asyncio.CancelledError:
                    if not watchdog.absorb_expiry():
                        raise
                    return _Failure(
                        ErrorKind.DECODE_TIMEOUT.value,
                        f"replica {rid} sent no token within {pool.config.decode_timeout_ms} ms",
                        terminal=ErrorKind.DECODE_TIMEOUT,
                    )
                except StopAsyncIteration:
                    if index < len(lt.sent):  # a strict replay that ends short diverged
                        return _Failure(
                            ErrorKind.WORKER_RESET.value,
                            f"replica {rid} diverged from the tokens already sent: it stopped "
                            f"after {index} of them (strict continuation)",
                            terminal=ErrorKind.WORKER_RESET,
                        )
                    return None
                except EngineRateLimited as exc:
                    return _Failure(
                        ENGINE_RATE_LIMITED,
                        f"replica {rid}: {exc}",
                        retry_after_s=exc.retry_after_s,
                    )
                except EngineUnavailable as exc:
                    return _Failure(ENGINE_UNAVAILABLE, f"replica {rid}: {exc}")
                except EngineError as exc:
                    return _Failure(ErrorKind.WORKER_RESET.value, f"replica {rid}: {exc}")
                except Exception as exc:  # an engine bug must not take the task down silently
                    log.exception("engine of replica %s failed", rid)
                    return _Failure(ErrorKind.WORKER_RESET.value, f"replica {rid} failed: {exc!r}")
                if index < len(lt.sent):
                    expected = lt.sent[index]
                    if (token.text, token.token_id) != (expected.text, expected.token_id):
                        return _Failure(
                            ErrorKind.WORKER_RESET.value,
                            f"replica {rid} diverged from the tokens already sent at index "
                            f"{index} (strict continuation)",
                            terminal=ErrorKind.WORKER_RESET,
                        )
                else:
                    self._emit_token(lt, replica, meters, index, token)
                index += 1
            return None
        finally:
            watchdog.close()

    def _write_pending_start(self, lt: LiveTask) -> None:
        """Queue the attempt's start for the next commit.

        Stream readers see nothing of an attempt before its first event, so the
        start waits for the next commit (:meth:`_write_pending_starts`), which
        holds that event, or for the outcome (one row write each, not two) if
        the attempt ends first in the same loop turn, or for a read of the task
        or its session. A crash before any of these finds the task still
        queued, and it runs again: it sent nothing.
        """
        if lt.pending_start is None:
            return
        attempt, fields = lt.pending_start
        lt.pending_start = None
        self._unrecorded.pop(attempt.task_id, None)

        def write() -> None:
            self.store.insert_attempt(attempt)
            self.store.update_task(attempt.task_id, **fields)

        self.journal.write(write)

    def _write_pending_starts(self) -> None:
        """Before each commit: the starts of attempts still unrecorded join it."""
        for lt in list(self._unrecorded.values()):
            self._write_pending_start(lt)

    def _emit(self, lt: LiveTask, event: str, data: dict[str, Any]) -> None:
        payload = dumps_text(data)
        row = lt.channel.append(event, payload)
        self.journal.event(lt.channel, lt.row.task_id, row.seq, event, payload)

    def _emit_started(self, lt: LiveTask, replica: Replica) -> None:
        """The task's one ``started`` event (ORCH-0077); callers check ``lt.started_sent``.

        Sent just before the first token, or just before ``end`` when an engine
        stops at once: a task that completed ran on a replica, and clients such as
        the determinism probe learn which one, and its seed, from this event.
        """
        lt.started_sent = True
        self._emit(
            lt,
            "started",
            {
                "task_id": lt.row.task_id,
                "replica_id": replica.replica_id,
                "engine": replica.engine.name,
                "engine_version": replica.engine.version,
                "seed": lt.row.seed,
                "sampler_profile_version": lt.request.sampler_profile_version,
            },
        )

    def _emit_token(
        self, lt: LiveTask, replica: Replica, meters: _AttemptMeters, index: int, token: Token
    ) -> None:
        if not lt.started_sent:
            self._emit_started(lt, replica)
        self._emit(lt, "token", {"index": index, "text": token.text, "token_id": token.token_id})
        lt.sent.append(Token(index, token.text, token.token_id))
        now = time.monotonic()
        if lt.last_token_at is None:
            meters.time_to_first_token.observe(now - lt.admitted_at)
        else:
            meters.inter_token_latency.observe(now - lt.last_token_at)
        lt.last_token_at = now
        meters.generated_tokens.inc()

    # ------------------------------------------------------------ termination

    def _finish(
        self,
        lt: LiveTask,
        state: str,
        *,
        error: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        attempt: tuple[int, str, str | None] | None = None,
    ) -> None:
        """Move a live task to its one terminal state: events, row and attempt in one commit.

        The outcome is queued in the journal; until its commit lands the task
        stays live and its closing event hidden, so nobody sees the outcome
        before it is durable (ORCH-0065). Callers that report the outcome at
        once (cancellation) commit it with :meth:`Journal.commit_now`.
        """
        if lt.finished:
            return
        lt.finished = True
        row = lt.row
        if state == "completed":
            assert finish_reason is not None
            self._emit(
                lt,
                "end",
                {"tokens_out": len(lt.sent), "finish_reason": finish_reason, "seed": row.seed},
            )
        else:
            assert error is not None
            self._emit(lt, "error", error)
        now = self.clock.now_ms()
        if attempt is None and lt.attempt_open is not None:
            attempt = (lt.attempt_open, "cancelled" if state == "cancelled" else "failed", None)
        lt.attempt_open = None

        started, lt.pending_start = lt.pending_start, None
        self._unrecorded.pop(row.task_id, None)
        tokens_out = len(lt.sent)

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
                self.store.insert_attempt(begun)
                self.store.update_task(row.task_id, **{**fields, **outcome})
            else:
                self.store.update_task(row.task_id, **outcome)
            if attempt is not None and not attempt_done:
                self.store.finish_attempt(row.task_id, attempt[0], attempt[1], attempt[2], now)

        def publish() -> None:
            row.state, row.tokens_out, row.finish_reason = state, tokens_out, finish_reason
            row.error, row.finished_ms = error, now
            lt.channel.close()
            self.live.pop(row.task_id)
            reason = str(finish_reason) if error is None else str(error["kind"])
            self.metrics.child(
                self.metrics.tasks_finished, row.pool_id, row.priority, state, reason
            ).inc()

        self.journal.write(persist)
        self.journal.then(publish)

    def _cancel(self, lt: LiveTask, why: str) -> None:
        pool = self.pools.get(lt.row.pool_id)
        if pool is not None and lt.row.state == "queued":
            pool.queue.remove(lt.row.task_id)
        self._finish(lt, "cancelled", error=task_error(ErrorKind.CANCELLED, why))
        if lt.runner is not None:
            lt.runner.cancel()

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        lt = self.live.get(task_id)
        if lt is not None and lt.finished:
            self.journal.commit_now()  # its outcome waits in the journal: land it, then answer 409
            lt = self.live.get(task_id)
        if lt is None:
            row = self.store.get_task(task_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
            raise ApiError(
                ErrorKind.CONFLICT, f"task {task_id!r} already ended ({row.state})",
                details={"state": row.state},
            )  # fmt: skip
        self._cancel(lt, "cancelled by the client")
        self.journal.commit_now()
        return self.get_task(task_id)

    # ------------------------------------------------------------ views

    def get_task(self, task_id: str) -> dict[str, Any]:
        lt = self.live.get(task_id)
        if lt is not None:
            # What waits in the journal lands first, the attempt's start included; the
            # commit may finish the task, which then is read like any ended one.
            self._write_pending_start(lt)
            self.journal.commit_if_possible()
            lt = self.live.get(task_id)
        row = lt.row if lt is not None else self.store.get_task(task_id)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
        attempts = [
            {
                "attempt": a.attempt,
                "replica_id": a.replica_id,
                "state": a.state,
                "error_kind": a.error_kind,
                "started_at": rfc3339(a.started_ms),
                "finished_at": rfc3339(a.finished_ms),
            }
            for a in self.store.attempts(task_id)
        ]
        return {
            "task_id": row.task_id,
            "session_id": row.session_id,
            "state": row.state,
            "priority": row.priority,
            "pool": row.pool_id,
            "max_tokens": row.max_tokens,
            "params": row.params,
            "replica_id": row.replica_id,
            "engine": row.engine,
            "engine_version": row.engine_version,
            "tokens_out": lt.tokens_streamed() if lt is not None else row.tokens_out,
            "finish_reason": row.finish_reason,
            "error": row.error,
            "attempts": attempts,
            "created_at": rfc3339(row.created_ms),
            "started_at": rfc3339(row.started_ms),
            "finished_at": rfc3339(row.finished_ms),
        }

    def open_stream(self, task_id: str, after: int) -> StreamSource:
        lt = self.live.get(task_id)
        if lt is not None:
            source = StreamSource(lt.channel, [])
            pool_id = lt.row.pool_id
        else:
            row = self.store.get_task(task_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"task {task_id!r} not found")
            source = StreamSource(None, self.store.events(task_id, after))
            pool_id = row.pool_id
        if after > 0:
            self.metrics.child(self.metrics.stream_resumes, pool_id).inc()
        return source

    def pool_view(self, pool_id: str) -> dict[str, Any]:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"pool {pool_id!r} not found")
        config = pool.config
        return {
            "pool_id": pool.pool_id,
            "ready": pool.ready,
            "queue_capacity": config.queue_capacity,
            "queue_depth": {
                "interactive": pool.queue.depth("interactive"),
                "batch": pool.queue.depth("batch"),
            },
            "overflow_policy": config.overflow_policy,
            "max_attempts": config.max_attempts,
            "batch_share_every": config.batch_share_every,
            "decode_timeout_ms": config.decode_timeout_ms,
            "replicas": [
                {
                    "replica_id": r.replica_id,
                    "engine": r.engine.name,
                    "engine_version": r.engine.version,
                    "state": r.state,
                    "in_flight": r.in_flight,
                    "slots": r.slots,
                }
                for r in pool.replicas
            ],
        }

    def pools_view(self) -> dict[str, Any]:
        return {"pools": [self.pool_view(pool_id) for pool_id in self.pools]}

    def set_fallback_mode(self, mode: str) -> None:
        self.store.put_setting(FALLBACK_MODE_KEY, mode)
        self.fallback_mode = mode

    def readiness(self) -> dict[str, bool]:
        return {pool_id: pool.ready for pool_id, pool in self.pools.items()}

    def _snapshot(self) -> list[PoolSnapshot]:
        return [
            PoolSnapshot(
                pool_id=pool.pool_id,
                depth={p: pool.queue.depth(p) for p in ("interactive", "batch")},
                running=pool.running,
                replicas=[(r.replica_id, r.engine.name, r.state) for r in pool.replicas],
            )
            for pool in self.pools.values()
        ]

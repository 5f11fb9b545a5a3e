"""Running a task: a replica slot, attempts, retries, the token stream.

A dispatched task gets a runner: an asyncio task that makes attempts on
replicas of its pool until one completes or a failure ends the task
(ORCH-0100..0112). Each runner is supervised: an unexpected exception is logged
and fails its task with ``INTERNAL`` (ORCH-0173), and the runner's replica slot
is released exactly once when it ends, however it ends. Tokens go to the
journal, which commits them and only then shows them to readers; a strict
task's retry must reproduce the tokens already sent, and the stream goes on
without a seam (ORCH-0106).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.engines import EngineError, EngineRateLimited, EngineUnavailable, Token
from orchestrator.engines.base import finish_reason
from orchestrator.errors import task_error
from orchestrator.metrics import Metrics
from orchestrator.runtime.admission import Admitter
from orchestrator.runtime.clock import sleep_at_least
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.pool import Pool, Replica
from orchestrator.runtime.starts import AttemptStarts
from orchestrator.runtime.tasks import LiveTask
from orchestrator.runtime.termination import AttemptEnd, Termination
from orchestrator.runtime.watchdog import DecodeWatchdog
from orchestrator.store import AttemptRow
from orchestrator.vocabulary import AttemptErrorKind, ErrorKind

log = logging.getLogger("orchestrator")


@dataclass(frozen=True)
class Failure:
    """Why an attempt ended without completing."""

    attempt_kind: str
    """The attempt's ``error_kind``."""
    message: str
    terminal: ErrorKind | None = None
    """Set when no retry may follow, whatever attempts remain."""
    retry_after_s: float | None = None
    """Set for an engine 429."""


def task_error_after(lt: LiveTask, pool: Pool, failure: Failure) -> dict[str, Any] | None:
    """The task error if ``failure`` ends the task, or None if a retry may follow.

    A best-effort task that already streamed is not replayed (ORCH-0108); a task
    out of attempts is exhausted (ORCH-0102).
    """
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


class _AttemptMeters:
    """The labelled metric children one attempt updates per token, resolved once."""

    def __init__(self, metrics: Metrics, pool_id: str, engine: str) -> None:
        self.generated_tokens = metrics.child(metrics.generated_tokens, pool_id, engine)
        self.time_to_first_token = metrics.child(metrics.time_to_first_token, pool_id)
        self.inter_token_latency = metrics.child(metrics.inter_token_latency, pool_id)


class Executor:
    def __init__(
        self,
        context: RuntimeContext,
        starts: AttemptStarts,
        termination: Termination,
        admitter: Admitter,
    ) -> None:
        self._context = context
        self._starts = starts
        self._termination = termination
        self._admitter = admitter

    def dispatcher(self, pool_id: str) -> Callable[[str, Replica], None]:
        """What ``pool_id``'s queue calls when it hands a queued task a replica slot."""

        def dispatch(task_id: str, replica: Replica) -> None:
            context = self._context
            lt = context.live[task_id]
            metrics = context.metrics
            waited = time.monotonic() - lt.admitted_at
            metrics.child(metrics.queue_wait, pool_id, lt.row.priority).observe(waited)
            self.start_runner(lt, context.pools[pool_id], replica)

        return dispatch

    def start_runner(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        """Run ``lt`` on ``replica`` (None: on the first free slot, ahead of the queue)."""
        lt.slot = replica
        runner = asyncio.create_task(self._supervised(lt, pool, replica))
        runner.add_done_callback(lambda _task: self._release(lt, pool))
        lt.runner = runner

    def finish_attempt(self, task_id: str, number: int, kind: str, now: int) -> None:
        store = self._context.store
        self._context.journal.write(
            lambda: store.finish_attempt(task_id, number, "failed", kind, now)
        )

    async def _supervised(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        if not await self._admitter.committed(lt.task_id):
            return  # never admitted: the admission answers the error
        try:
            await self._run(lt, pool, replica)
        except Exception:
            log.exception("running task %s failed", lt.task_id)
            error = task_error(ErrorKind.INTERNAL, "the orchestrator failed while running the task")
            opened = lt.attempt_open
            attempt: AttemptEnd | None = None
            if opened is not None:
                attempt = (opened, "failed", ErrorKind.INTERNAL.value)
            self._termination.finish(lt, "failed", error=error, attempt=attempt)

    def _release(self, lt: LiveTask, pool: Pool) -> None:
        replica, lt.slot = lt.slot, None
        if replica is not None:
            pool.release(replica)

    async def _run(self, lt: LiveTask, pool: Pool, replica: Replica | None) -> None:
        avoid: set[str] = set()
        prefer: str | None = None
        while True:
            if replica is None:
                replica = await pool.acquire(frozenset(avoid), prefer)
                lt.slot = replica
            failure = await self._attempt(lt, pool, replica)
            if failure is None:
                return
            error = task_error_after(lt, pool, failure)
            if error is not None:
                self._termination.finish(lt, "failed", error=error)
                return
            self._release(lt, pool)
            pacing = self._context.fallback_mode == "intelligent_pacing"
            if failure.retry_after_s is not None and pacing:  # ORCH-0110
                await sleep_at_least(failure.retry_after_s)
                avoid, prefer = set(), replica.replica_id
            else:  # ORCH-0109
                avoid.add(replica.replica_id)
                prefer = None
            replica = None

    async def _attempt(self, lt: LiveTask, pool: Pool, replica: Replica) -> Failure | None:
        context = self._context
        lt.attempts += 1
        number = lt.attempts
        now = context.clock.now_ms()
        row = lt.row
        fields: dict[str, Any] = {
            "state": "running",
            "replica_id": replica.replica_id,
            "engine": replica.engine.name,
            "engine_version": replica.engine.version,
        }
        if row.started_ms is None:
            fields["started_ms"] = now
        attempt = AttemptRow(row.task_id, number, replica.replica_id, "running", None, now, None)
        self._starts.defer(lt, attempt, fields)
        lt.attempt_open = number
        for name, value in fields.items():
            setattr(row, name, value)

        tokens = replica.engine.generate(lt.request).__aiter__()
        try:
            failure = await self._decode(lt, pool, replica, tokens)
            outcome = "completed" if failure is None else "failed"
            metrics = context.metrics
            metrics.child(metrics.attempts, pool.pool_id, replica.replica_id, outcome).inc()
            lt.attempt_open = None
            if failure is None:
                if not lt.started_sent:  # the engine stopped at once: `started` goes with `end`
                    self._emit_started(lt, replica)
                reason = finish_reason(len(lt.sent), row.max_tokens)
                self._termination.finish(
                    lt, "completed", finish_reason=reason, attempt=(number, "completed", None)
                )
                return None
            self._starts.write(lt)
            self.finish_attempt(row.task_id, number, failure.attempt_kind, context.clock.now_ms())
            if failure.attempt_kind == AttemptErrorKind.ENGINE_UNAVAILABLE:
                pool.mark_down(replica)
            return failure
        finally:
            aclose = getattr(tokens, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _decode(
        self, lt: LiveTask, pool: Pool, replica: Replica, tokens: AsyncIterator[Token]
    ) -> Failure | None:
        """Stream one attempt's tokens; None once the engine stopped or ``max_tokens`` is reached.

        A token goes to the journal, which commits it at the end of the loop turn
        and only then shows it to readers; a task that ends within the turn of its
        last token commits its tokens, outcome and attempt in one go.
        """
        rid = replica.replica_id
        meters = _AttemptMeters(self._context.metrics, pool.pool_id, replica.engine.name)
        timeout_ms = pool.config.decode_timeout_ms
        watchdog = DecodeWatchdog(timeout_ms / 1000)
        index = 0
        try:
            while index < lt.request.max_tokens:
                try:
                    token = await anext(tokens)
                    watchdog.progress()
                except asyncio.CancelledError:
                    if not watchdog.absorb_expiry():
                        raise
                    return Failure(
                        ErrorKind.DECODE_TIMEOUT,
                        f"replica {rid} sent no token within {timeout_ms} ms",
                        terminal=ErrorKind.DECODE_TIMEOUT,
                    )
                except StopAsyncIteration:
                    if index < len(lt.sent):  # a strict replay that ends short diverged
                        return Failure(
                            ErrorKind.WORKER_RESET,
                            f"replica {rid} diverged from the tokens already sent: it stopped "
                            f"after {index} of them (strict continuation)",
                            terminal=ErrorKind.WORKER_RESET,
                        )
                    return None
                except EngineRateLimited as exc:
                    return Failure(
                        AttemptErrorKind.ENGINE_RATE_LIMITED,
                        f"replica {rid}: {exc}",
                        retry_after_s=exc.retry_after_s,
                    )
                except EngineUnavailable as exc:
                    return Failure(AttemptErrorKind.ENGINE_UNAVAILABLE, f"replica {rid}: {exc}")
                except EngineError as exc:
                    return Failure(ErrorKind.WORKER_RESET, f"replica {rid}: {exc}")
                except Exception as exc:  # an engine bug must not take the task down silently
                    log.exception("engine of replica %s failed", rid)
                    return Failure(ErrorKind.WORKER_RESET, f"replica {rid} failed: {exc!r}")
                if index < len(lt.sent):
                    expected = lt.sent[index]
                    if (token.text, token.token_id) != (expected.text, expected.token_id):
                        return Failure(
                            ErrorKind.WORKER_RESET,
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

    def _emit_started(self, lt: LiveTask, replica: Replica) -> None:
        """The task's one ``started`` event (ORCH-0077); callers check ``lt.started_sent``.

        Sent just before the first token, or just before ``end`` when an engine
        stops at once: a task that completed ran on a replica, and clients such as
        the determinism probe learn which one, and its seed, from this event.
        """
        lt.started_sent = True
        started = {
            "task_id": lt.task_id,
            "replica_id": replica.replica_id,
            "engine": replica.engine.name,
            "engine_version": replica.engine.version,
            "seed": lt.row.seed,
            "sampler_profile_version": lt.request.sampler_profile_version,
        }
        self._context.emit(lt, "started", started)

    def _emit_token(
        self, lt: LiveTask, replica: Replica, meters: _AttemptMeters, index: int, token: Token
    ) -> None:
        if not lt.started_sent:
            self._emit_started(lt, replica)
        data = {"index": index, "text": token.text, "token_id": token.token_id}
        self._context.emit(lt, "token", data)
        lt.sent.append(Token(index, token.text, token.token_id))
        now = time.monotonic()
        if lt.last_token_at is None:
            meters.time_to_first_token.observe(now - lt.admitted_at)
        else:
            meters.inter_token_latency.observe(now - lt.last_token_at)
        lt.last_token_at = now
        meters.generated_tokens.inc()

"""The step scheduler: what a live run does next, each step's attempts, and every commit.

It starts each step whose dependencies all succeeded (up to the run's
``max_parallel``) by admitting a task through :class:`Admitter`, and learns each
task's outcome from :class:`Termination` (``context.task_ended``): no second
executor. Steps with child runs go through :class:`ChildRuns`. Invariants:

- **Durable before visible.** Every change of a run (a step's state, output or
  attempt, the run's state) and the run events that report it are committed in
  one transaction (:meth:`Scheduler.commit`) before readers can see them; a step
  attempt's row and its ``step.started`` event join the commit of the task's
  admission, so a step's task is never admitted without being recorded (ORCH-0340).
- **Fail fast.** A step that fails after its attempts skips every pending step
  and cancels every pending checkpoint; running steps finish; the run fails once
  none runs (ORCH-0328, ORCH-0371).
- **Paused, not stopped.** While a checkpoint is pending the run is
  ``awaiting_approval`` and starts no pending step (ORCH-0363).
- **Derived again after a failed write.** A run whose write failed is dropped and
  rebuilt from the store (``rebuild``: :func:`~orchestrator.runtime.run_restart.rebuild`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable
from typing import Any

from orchestrator.errors import ApiError, task_error
from orchestrator.runs import ParsedDefinition, backoff_ms, step_seed
from orchestrator.runs.children import Lookup
from orchestrator.runtime import checkpoints
from orchestrator.runtime.admission import Admitter
from orchestrator.runtime.audit import entry as audit_entry
from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.children import ChildRuns
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.live_runs import Change, LiveRun, event_row, in_order
from orchestrator.runtime.run_metrics import RunMetrics
from orchestrator.runtime.termination import Termination
from orchestrator.schemas import TaskCreate
from orchestrator.store import ChildRow, RunRow, StepAttemptRow, StepRow, StoreError, TaskRow
from orchestrator.vocabulary import (
    FAILURE_DECISIONS,
    RUN_TERMINAL_STATES,
    CheckpointWhen,
    Decision,
    ErrorKind,
    StepState,
)

log = logging.getLogger("orchestrator.runs")

MAX_PROMPT_CHARS = 32_768
"""A rendered step prompt is a task prompt (ORCH-0038)."""
STEP_PRIORITY = "batch"
"""Every step's task is admitted with this priority (ORCH-0330)."""
RESYNC_DELAY_S = 1.0
"""After a write that failed, a run is derived again from the store this much later."""


class Scheduler:
    """Drives every live run: what starts next, each step's attempts and outcomes, and
    the one commit through which every change of a run passes."""

    def __init__(
        self,
        context: RuntimeContext,
        admitter: Admitter,
        termination: Termination,
        lookup: Lookup,
        rebuild: Callable[[Scheduler, RunRow], None],
    ) -> None:
        self.context = context
        self.lookup = lookup
        """The registered definition of a name and a version."""
        self._admitter = admitter
        self._termination = termination
        self._rebuild = rebuild
        """Drives a running run again from the store (:func:`.run_restart.rebuild`)."""
        self._live: dict[str, LiveRun] = {}
        self._task_steps: dict[str, tuple[str, str]] = {}
        """The task of each running step attempt -> ``(run_id, step_id)``."""
        self._background: set[asyncio.Task[None]] = set()
        self._ended: list[TaskRow] = []
        """Tasks of steps that ended and whose steps have not moved yet (:meth:`_drain`)."""
        self._drain_scheduled = False
        self._rng = random.Random(secrets.randbits(128))
        self._metrics = RunMetrics(context.metrics)
        self.children = ChildRuns(self)
        context.task_ended.append(self._task_ended)

    # ------------------------------------------------------------ live runs

    def prepare_run(
        self,
        parsed: ParsedDefinition,
        session_id: str,
        inputs: dict[str, Any],
        seed: int,
        max_parallel: int,
        actor: str,
        parent: ChildRow | None = None,
    ) -> tuple[LiveRun, Callable[[], None]]:
        """A new run and the writes that persist it with its ``run.started`` event, its
        audit entry (ORCH-0381) and, for a child run, its link to its parent (ORCH-0488):
        the caller makes them part of a transaction, then calls :meth:`launch`."""
        context = self.context
        now = context.clock.now_ms()
        row = RunRow(
            run_id=context.new_id("run"),
            session_id=session_id,
            definition=parsed.name,
            version=parsed.version,
            seed=seed,
            max_parallel=max_parallel,
            inputs=inputs,
            state="running",
            created_ms=now,
            finished_ms=None,
        )
        steps = {
            step.id: StepRow(
                run_id=row.run_id,
                step_id=step.id,
                position=position,
                state="pending",
                seed=step.params.seed if step.params.seed is not None else step_seed(seed, step.id),
                output=None,
                error=None,
                started_ms=None,
                finished_ms=None,
                retry_at_ms=None,
            )
            for position, step in enumerate(parsed.document.steps)
        }
        if parent is not None:
            parent = ChildRow(parent.parent_run_id, parent.parent_step_id, parent.item, row.run_id)
        run = LiveRun(
            row, parsed, steps, {s: [] for s in steps}, TaskChannel(), audit_seq=1, parent=parent
        )
        started = event_row(run, 1, "run.started", _run_started(row))
        created = audit_entry(
            row.run_id,
            1,
            now,
            actor,
            "run.created",
            {"definition": row.definition, "version": row.version},
        )
        store = context.store

        def write() -> None:
            store.insert_run(row, steps.values())
            if parent is not None:
                store.insert_child(parent)
            context.write_run_events([started])
            store.insert_audit([created])

        run.channel.append(started[2], started[3])
        return run, write

    def restore_metrics(self) -> None:
        """Set the gauges that count what the store holds (pending checkpoints) after a restart."""
        self._metrics.restore(self.context.store.pending_checkpoint_counts())

    def launch(self, run: LiveRun) -> None:
        """Show a run :meth:`prepare_run` made, once written, and start its first steps."""
        run.channel.reveal(1)
        self._metrics.record(
            [("run.started", {})], lambda step_id: self._start_delay(run, step_id), {}
        )
        self._live[run.run_id] = run
        self.advance(run)

    def live_run(self, run_id: str) -> LiveRun | None:
        return self._live.get(run_id)

    def live_runs(self) -> list[LiveRun]:
        return list(self._live.values())

    def adopt(self, run: LiveRun) -> None:
        """Drive ``run``, rebuilt from the store (:mod:`.run_restart`)."""
        self._live[run.run_id] = run

    def forget(self, run_id: str) -> LiveRun | None:
        """Stop driving a run (to rebuild it from the store): its timers and its tasks."""
        run = self._live.pop(run_id, None)
        if run is None:
            return None
        for timer in run.timers.values():
            timer.cancel()
        for task_id, (owner, _) in list(self._task_steps.items()):
            if owner == run_id:
                del self._task_steps[task_id]
        return run

    def follow(self, task_id: str, run_id: str, step_id: str) -> None:
        """The step ``step_id`` of ``run_id`` moves on when ``task_id`` ends."""
        self._task_steps[task_id] = (run_id, step_id)

    # ------------------------------------------------------------ ending runs

    def land_task_ends(self) -> None:
        """Commit the task ends waiting in the journal, so their steps take them first: a
        step whose task completed is not aborted as if it were still running."""
        self.context.journal.commit_now()
        self._drain()

    def abort(
        self, run: LiveRun, why: str, actor: str | None, change: Change | None = None
    ) -> None:
        """End the run ``aborted`` in one commit with ``change`` (a decision to abort, whose
        own audit entry records it: ``actor`` ``None``)."""
        change = change or Change()
        cancelled = task_error(ErrorKind.CANCELLED, f"run {why}")
        now = self.context.clock.now_ms()
        tasks: list[str] = []
        self._cancel_checkpoints(run, change, now)
        for step in in_order(run):
            if step.state == "running":
                change.step(step.step_id, state="failed", error=cancelled, finished_ms=now)
                change.events.append(("step.failed", {"step_id": step.step_id, "error": cancelled}))
                attempts = run.attempts[step.step_id]
                if attempts and attempts[-1].task_id is not None:
                    tasks.append(attempts[-1].task_id)
            elif step.state == "pending":
                change.step(step.step_id, state="skipped", finished_ms=now)
                change.events.append(("step.skipped", {"step_id": step.step_id}))
        change.run.update(state="aborted", finished_ms=now)
        change.events.append(("run.aborted", {"run_id": run.run_id, "message": f"run {why}"}))
        if actor is not None:
            change.audit.append((actor, "run.aborted", {"message": f"run {why}"}, None))
        self.commit(run, change)
        self.cancel_tasks(tasks, f"run {why}")

    def cancel_tasks(self, task_ids: list[str], why: str) -> None:
        """Cancel the tasks of steps that ended with their run (ORCH-0324)."""
        context = self.context
        for task_id in task_ids:
            self._task_steps.pop(task_id, None)
            lt = context.live.get(task_id)
            if lt is not None and not lt.finished:
                self._termination.cancel(lt, why)
        context.journal.commit_now()

    # ------------------------------------------------------------ scheduling

    def advance(self, run: LiveRun) -> None:
        """Decide what happens next: skip, end the run, pause it, or start ready steps."""
        if run.ended:
            return
        change = Change()
        now = self.context.clock.now_ms()
        states = {s.step_id: s.state for s in run.steps.values()}
        if any(state == "failed" for state in states.values()):
            self._cancel_checkpoints(run, change, now)
            for step in in_order(run):
                if step.state == "pending" and step.step_id not in run.admitting:
                    change.step(step.step_id, state="skipped", finished_ms=now)
                    change.events.append(("step.skipped", {"step_id": step.step_id}))
            busy = len({s.step_id for s in run.running()} | run.admitting)
            if busy == 0:
                failed = next(s for s in in_order(run) if s.state == "failed")
                change.run.update(state="failed", finished_ms=now)
                change.events.append(
                    (
                        "run.failed",
                        {"run_id": run.run_id, "step_id": failed.step_id, "error": failed.error},
                    )
                )
            elif run.row.state != "running":
                change.run.update(state="running")
            if change.steps or change.run:
                self.commit(run, change)
            return
        declared = {s.id: s for s in run.definition.document.steps}
        for step in in_order(run):  # the dependants of a skipped step (ORCH-0376)
            needs = declared[step.step_id].depends_on
            if states[step.step_id] == "pending" and any(states[d] == "skipped" for d in needs):
                states[step.step_id] = "skipped"
                change.step(step.step_id, state="skipped", finished_ms=now)
                change.events.append(("step.skipped", {"step_id": step.step_id}))
        if all(state in ("succeeded", "skipped") for state in states.values()):
            change.run.update(state="completed", finished_ms=now)
            change.events.append(("run.completed", {"run_id": run.run_id}))
            self.commit(run, change)
            return
        if checkpoints.pending(run.checkpoints.values()):
            if run.row.state != "awaiting_approval":
                change.run.update(state="awaiting_approval")
            if change.steps or change.run:
                self.commit(run, change)
            return  # no step starts while a checkpoint is pending (ORCH-0363)
        if run.row.state != "running":
            change.run.update(state="running")
        busy = len(
            {s.step_id for s in run.steps.values() if s.state in ("running", "waiting_approval")}
            | run.admitting
        )
        ready: list[str] = []
        for step in in_order(run):
            if busy >= run.row.max_parallel:
                break
            if states[step.step_id] != "pending" or step.step_id in run.admitting:
                continue
            if not dependencies_met(states, declared[step.step_id].depends_on):
                continue
            busy += 1
            checkpoint = declared[step.step_id].checkpoint
            if (
                checkpoint is not None
                and checkpoint.when == "before"
                and not checkpoints.approved_before(run.checkpoints.values(), step.step_id)
            ):
                # The run pauses here: no later step starts (ORCH-0361, ORCH-0363). With
                # admissions in flight, the checkpoint is requested once they landed (the
                # last one advances the run again), so no step starts while it is pending.
                if not ready and not run.admitting:
                    self._request_checkpoint(run, change, step.step_id, None, now)
                break
            ready.append(step.step_id)
        if change.steps or change.run or change.checkpoints:
            self.commit(run, change)
        # Tasks first: a step with child runs may end at once (no item) and advance the
        # run again, which must find these steps already admitting.
        for step_id in ready:
            if declared[step_id].run is None:
                self.start_attempt(run, step_id)
        for step_id in ready:
            if declared[step_id].run is not None:
                self.children.evaluate(run, step_id)

    def _request_checkpoint(
        self,
        run: LiveRun,
        change: Change,
        step_id: str,
        output: str | None,
        now: int,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Pause the step at its declared checkpoint, or at a failure checkpoint when
        ``error`` is given, and the run with it (ORCH-0361..0364, ORCH-0374)."""
        declared = run.definition.document.steps[run.steps[step_id].position]
        if error is not None:
            when: CheckpointWhen = "failure"
            decisions: list[Decision] = list(FAILURE_DECISIONS)
        else:
            assert declared.checkpoint is not None
            when, decisions = declared.checkpoint.when, [*declared.checkpoint.allowed()]
        row = checkpoints.request(
            [*run.checkpoints.values(), *change.checkpoints.values()],
            run.run_id,
            step_id,
            when,
            decisions,
            output,
            now,
            error,
        )
        change.step(step_id, state="waiting_approval")
        change.checkpoint(row)
        change.run.update(state="awaiting_approval")

    def _cancel_checkpoints(self, run: LiveRun, change: Change, now: int) -> None:
        """Cancel each pending checkpoint the change does not decide; skip its step (ORCH-0371)."""
        for row in checkpoints.pending(run.checkpoints.values()):
            if row.checkpoint_id in change.checkpoints:
                continue
            change.checkpoint(checkpoints.cancelled(row))
            change.step(row.step_id, state="skipped", finished_ms=now, retry_at_ms=None)
            change.events.append(("step.skipped", {"step_id": row.step_id}))

    def start_attempt(self, run: LiveRun, step_id: str) -> None:
        run.admitting.add(step_id)
        run.timers.pop(step_id, None)
        self._spawn(self._attempt(run, step_id))

    async def _attempt(self, run: LiveRun, step_id: str) -> None:
        """Admit the step's next attempt as a task (ORCH-0330, ORCH-0331)."""
        step = run.steps[step_id]
        if run.ended or step.state not in ("pending", "running"):
            run.admitting.discard(step_id)  # aborted before this attempt began
            return
        declared = run.definition.document.steps[step.position]
        number = len(run.attempts[step_id]) + 1
        prompt, inputs = checkpoints.attempt_overrides(run.checkpoints.values(), step_id)
        if prompt is None:
            outputs = {d: run.steps[d].output or "" for d in declared.depends_on}
            prompt = run.definition.templates[step_id].render(inputs or run.row.inputs, outputs)
        try:
            if not 1 <= len(prompt) <= MAX_PROMPT_CHARS:
                raise ApiError(
                    ErrorKind.INVALID_PARAMS,
                    f"the rendered prompt of step {step_id!r} has {len(prompt)} characters; "
                    f"a task prompt has 1 to {MAX_PROMPT_CHARS}",
                )
            body = TaskCreate(
                session_id=run.row.session_id,
                prompt=prompt,
                priority=STEP_PRIORITY,
                pool=declared.pool,
                max_tokens=declared.max_tokens,
                params={**declared.params.model_dump(), "seed": step.seed},
            )
            admitted = await self._admitter.admit(
                body, joined=lambda task_id: self._record_attempt(run, step_id, number, task_id)
            )
        except ApiError as exc:
            run.admitting.discard(step_id)
            if exc.kind == ErrorKind.INVALID_PARAMS:  # the same prompt would fail again
                self._step_failed(run, step_id, task_error(exc.kind, exc.message), final=True)
            else:
                self._refused_attempt(run, step_id, number, task_error(exc.kind, exc.message))
            return
        except StoreError as exc:
            run.admitting.discard(step_id)
            log.warning("run %s: step %s could not be admitted: %s", run.run_id, step_id, exc)
            self.resync_later(run.run_id)
            return
        except Exception:  # a bug: the step fails, the other runs go on (ORCH-0173)
            run.admitting.discard(step_id)
            log.exception("run %s: starting step %s failed", run.run_id, step_id)
            failure = task_error(ErrorKind.INTERNAL, "internal error starting the step")
            self._step_failed(run, step_id, failure, final=True)
            return
        run.admitting.discard(step_id)
        if run.ended:  # aborted while the admission was committing
            self.cancel_tasks([admitted.task_id], "run aborted")
        elif not run.admitting:
            self.advance(run)  # a checkpoint may wait for these admissions (ORCH-0363)

    def _record_attempt(self, run: LiveRun, step_id: str, number: int, task_id: str) -> None:
        """Joined to the task's admission commit: the attempt row and ``step.started``."""
        store = self.context.store
        now = self.context.clock.now_ms()
        step = run.steps[step_id]
        attempt = StepAttemptRow(run.run_id, step_id, number, task_id, None, now)
        change = Change()
        fields: dict[str, Any] = {"state": "running", "retry_at_ms": None}
        if step.started_ms is None:
            fields["started_ms"] = now
        change.step(step_id, **fields)
        change.events.append(
            ("step.started", {"step_id": step_id, "attempt": number, "task_id": task_id})
        )
        self.commit(run, change, also=lambda: store.insert_step_attempt(attempt))
        self._task_steps[task_id] = (run.run_id, step_id)
        run.attempts[step_id].append(attempt)

    def _refused_attempt(
        self, run: LiveRun, step_id: str, number: int, error: dict[str, Any]
    ) -> None:
        """An attempt whose task the server refused to admit (a full queue, an unready pool)."""
        if run.ended:
            return
        store = self.context.store
        now = self.context.clock.now_ms()
        attempt = StepAttemptRow(run.run_id, step_id, number, None, error, now)
        try:
            change = Change()
            if run.steps[step_id].started_ms is None:
                change.step(step_id, state="running", started_ms=now)
            self.commit(run, change, also=lambda: store.insert_step_attempt(attempt))
        except StoreError as exc:
            log.warning("run %s: cannot record a refused attempt: %s", run.run_id, exc)
            self.resync_later(run.run_id)
            return
        run.attempts[step_id].append(attempt)
        self._step_failed(run, step_id, error, final=False)

    def _task_ended(self, row: TaskRow) -> None:
        """A task ended (from :class:`Termination`, once durable): its step goes on.

        Called from inside a commit (the journal publishes after it lands, and a run's
        own transaction may be the one that lands it), so the step moves later, in
        :meth:`_drain`, never in the middle of another change of its run.
        """
        if row.task_id not in self._task_steps:
            return
        self._ended.append(row)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Move the steps whose tasks ended, in the order the tasks ended."""
        self._drain_scheduled = False
        if not self.context.running:  # stopped: a restart derives the steps again
            self._ended.clear()
            return
        while self._ended:
            row = self._ended.pop(0)
            found = self._task_steps.pop(row.task_id, None)
            if found is None:
                continue
            run = self._live.get(found[0])
            if run is None or run.steps[found[1]].state != "running":
                continue
            try:
                self.apply_outcome(run, found[1], row)
            except StoreError as exc:
                log.warning("run %s: cannot record step %s: %s", run.run_id, found[1], exc)
                self.resync_later(run.run_id)

    def apply_outcome(self, run: LiveRun, step_id: str, task: TaskRow) -> None:
        if task.state == "completed":
            output = self.context.store.task_output(task.task_id)
            change = Change()
            checkpoint = run.definition.document.steps[run.steps[step_id].position].checkpoint
            if checkpoint is not None and checkpoint.when == "after":
                now = self.context.clock.now_ms()
                self._request_checkpoint(run, change, step_id, output, now)
                self.commit(run, change)
                self.advance(run)
                return
            change.step(
                step_id,
                state="succeeded",
                output=output,
                finished_ms=self.context.clock.now_ms(),
            )
            change.events.append(
                (
                    "step.succeeded",
                    {"step_id": step_id, "task_id": task.task_id, "output": output},
                )
            )
            self.commit(run, change)
            self.advance(run)
            return
        error = task.error or task_error(ErrorKind.INTERNAL, f"task ended {task.state}")
        self._step_failed(run, step_id, error, final=task.state == "cancelled")

    def _step_failed(
        self, run: LiveRun, step_id: str, error: dict[str, Any], *, final: bool
    ) -> None:
        """Retry after the backoff while attempts remain (ORCH-0332), else fail the step."""
        declared = run.definition.document.steps[run.steps[step_id].position]
        retry = declared.retry
        made = len(run.attempts[step_id])
        now = self.context.clock.now_ms()
        change = Change()
        if not final and made < retry.max_attempts:
            wait = backoff_ms(
                made, retry.backoff_base_ms, retry.backoff_cap_ms, retry.jitter_ms, self._rng
            )
            change.step(step_id, state="running", retry_at_ms=now + wait)
            self.commit(run, change)
            self.retry_at(run, step_id, wait)
            return
        if declared.on_failure == "hold" and not run.ended:
            change.step(step_id, retry_at_ms=None)
            self._request_checkpoint(run, change, step_id, None, now, error)
            self.commit(run, change)
            self.advance(run)
            return
        change.step(step_id, state="failed", error=error, finished_ms=now, retry_at_ms=None)
        change.events.append(("step.failed", {"step_id": step_id, "error": error}))
        self.commit(run, change)
        self.advance(run)

    def retry_at(self, run: LiveRun, step_id: str, wait_ms: int) -> None:
        def due() -> None:
            run.timers.pop(step_id, None)
            if not run.ended and run.steps[step_id].state == "running":
                self.start_attempt(run, step_id)

        loop = asyncio.get_running_loop()
        run.timers[step_id] = loop.call_later(max(0, wait_ms) / 1000, due)

    # ------------------------------------------------------------ the store

    def commit(self, run: LiveRun, change: Change, also: Any = None) -> None:
        """Write ``change`` (and ``also``) in one transaction, then show it: rows, then events."""
        store = self.context.store
        base = len(run.channel.events)
        rows = [
            event_row(run, base + number, event, data)
            for number, (event, data) in enumerate(change.events, start=1)
        ]
        now = self.context.clock.now_ms()
        audit = [
            audit_entry(
                run.run_id,
                run.audit_seq + number,
                now,
                actor,
                action,
                detail,
                step_id=about.step_id if about is not None else None,
                checkpoint_id=about.checkpoint_id if about is not None else None,
            )
            for number, (actor, action, detail, about) in enumerate(change.audit, start=1)
        ]
        with store.transaction():
            if also is not None:
                also()
            for step_id, fields in change.steps.items():
                store.update_step(run.run_id, step_id, **fields)
            if change.run:
                store.update_run(run.run_id, **change.run)
            for checkpoint in change.checkpoints.values():
                store.save_checkpoint(checkpoint)
            if audit:
                store.insert_audit(audit)
            if rows:
                self.context.write_run_events(rows)
        run.checkpoints.update(change.checkpoints)
        run.audit_seq += len(audit)
        for step_id, fields in change.steps.items():
            step = run.steps[step_id]
            for name, value in fields.items():
                setattr(step, name, value)
        for name, value in change.run.items():
            setattr(run.row, name, value)
        for row in rows:
            run.channel.append(row[2], row[3])
        if rows:
            run.channel.reveal(rows[-1][1])
        self._metrics.record(
            change.events, lambda step_id: self._start_delay(run, step_id), run.checkpoints
        )
        if run.ended:
            self._end(run)

    def _start_delay(self, run: LiveRun, step_id: str) -> tuple[str, float]:
        """The step's pool, and the seconds since its last dependency succeeded (ORCH-0462)."""
        declared = run.definition.document.steps[run.steps[step_id].position]
        ready = max(
            (run.steps[d].finished_ms or 0 for d in declared.depends_on),
            default=run.row.created_ms,
        )
        return declared.pool, max(0, self.context.clock.now_ms() - ready) / 1000

    def _end(self, run: LiveRun) -> None:
        for timer in run.timers.values():
            timer.cancel()
        run.timers.clear()
        run.channel.close()
        self._live.pop(run.run_id, None)
        self.children.run_ended(run)

    def resync_later(self, run_id: str) -> None:
        """Derive the run again from the store after a write failed."""

        def resync() -> None:
            run = self.forget(run_id)
            if run is None:
                return
            row = self.context.store.get_run(run_id)
            try:
                if row is not None and row.state not in RUN_TERMINAL_STATES:
                    self._rebuild(self, row)
                else:
                    run.channel.close()
            except StoreError:
                self._live.setdefault(run_id, run)
                self.resync_later(run_id)

        asyncio.get_running_loop().call_later(RESYNC_DELAY_S, resync)

    def stop(self) -> None:
        for run in self._live.values():
            for timer in run.timers.values():
                timer.cancel()
            run.channel.close()
        for task in list(self._background):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def dependencies_met(states: dict[str, StepState], depends_on: list[str]) -> bool:
    """A step may start once every step it depends on succeeded (ORCH-0326)."""
    return all(states[dependency] == "succeeded" for dependency in depends_on)


def _run_started(row: RunRow) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "definition": row.definition,
        "version": row.version,
        "seed": row.seed,
    }

"""Multi-step runs: definitions, the step graph, and every step run as an ordinary task.

A run is a DAG of steps (spec section 12). This part registers definitions,
creates runs, starts each step whose dependencies all succeeded (up to the
run's ``max_parallel``) by admitting a task through :class:`Admitter`, and
learns each task's outcome from :class:`Termination` (``context.task_ended``):
no second executor. Invariants:

- **Durable before visible.** Every change of a run (a step's state, output or
  attempt, the run's state) and the run events that report it are committed in
  one transaction before readers can see them; a step attempt's row and its
  ``step.started`` event join the commit of the task's admission, so a step's
  task is never admitted without being recorded (ORCH-0340).
- **Derivable again.** What a run does next follows from the store alone: a
  restart rebuilds each running run from its rows and the states of its steps'
  tasks, so nothing is lost, a step that succeeded never runs again, and event
  ids continue (ORCH-0340..0343, ORCH-0351).
- **Fail fast.** A step that fails after its attempts skips every pending step
  and cancels every pending checkpoint; running steps finish; the run fails once
  none runs (ORCH-0328, ORCH-0371).
- **Paused, not stopped.** While a checkpoint is pending the run is
  ``awaiting_approval`` and starts no pending step; a decision, its effects, its
  events and its audit entry are one commit (:mod:`.checkpoints`, :mod:`.audit`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ApiError, task_error
from orchestrator.runs import (
    DefinitionError,
    DefinitionLimits,
    ParsedDefinition,
    backoff_ms,
    step_seed,
    validate_definition,
)
from orchestrator.runs.children import check_children
from orchestrator.runs.inputs import InputError, check_inputs
from orchestrator.runtime import checkpoints
from orchestrator.runtime.admission import Admitter
from orchestrator.runtime.audit import SYSTEM
from orchestrator.runtime.audit import entry as audit_entry
from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.children import ChildRuns
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.run_metrics import RunMetrics
from orchestrator.runtime.run_views import (
    decode_cursor,
    definition_summary,
    definition_view,
    encode_cursor,
    parse_time,
    run_summary,
    run_view,
    stored_children,
)
from orchestrator.runtime.sessions import Sessions
from orchestrator.runtime.streams import StreamSource
from orchestrator.runtime.termination import Termination
from orchestrator.schemas import (
    Approval,
    CheckpointDecision,
    Definition,
    DefinitionList,
    Run,
    RunCreate,
    RunList,
    TaskCreate,
)
from orchestrator.store import (
    CheckpointRow,
    ChildRow,
    DefinitionRow,
    RunRow,
    StepAttemptRow,
    StepRow,
    StoreError,
    TaskRow,
)
from orchestrator.vocabulary import (
    FAILURE_DECISIONS,
    RUN_TERMINAL_STATES,
    AuditAction,
    CheckpointWhen,
    Decision,
    ErrorKind,
    RunEvent,
    RunState,
    StepState,
)

log = logging.getLogger("orchestrator.runs")

MAX_SERVER_RUN_SEED = 2**31
"""Run seeds the server picks fit in 31 bits, like task seeds."""
MAX_PROMPT_CHARS = 32_768
"""A rendered step prompt is a task prompt (ORCH-0038)."""
STEP_PRIORITY = "batch"
"""Every step's task is admitted with this priority (ORCH-0330)."""
RESYNC_DELAY_S = 1.0
"""After a write that failed, a run is derived again from the store this much later."""
MAX_LIST_LIMIT = 100


@dataclass
class LiveRun:
    """A running run: its rows as stored, and the channel its event readers follow."""

    row: RunRow
    definition: ParsedDefinition
    steps: dict[str, StepRow]
    attempts: dict[str, list[StepAttemptRow]]
    channel: TaskChannel
    admitting: set[str] = field(default_factory=set)
    """Steps whose task admission is in flight: they hold a place of ``max_parallel``."""
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    """Steps waiting out their retry backoff."""
    checkpoints: dict[str, CheckpointRow] = field(default_factory=dict)
    """Every checkpoint of the run, by id, in the order they were requested."""
    audit_seq: int = 0
    """The ``seq`` of the run's last audit entry."""
    parent: ChildRow | None = None
    """The run, step and item that created this child run (ORCH-0488)."""
    children: dict[str, dict[int, str]] = field(default_factory=dict)
    """Each step's child runs: item -> run id (ORCH-0487)."""

    @property
    def run_id(self) -> str:
        return self.row.run_id

    @property
    def ended(self) -> bool:
        return self.row.state in RUN_TERMINAL_STATES

    def running(self) -> list[StepRow]:
        return [s for s in self.steps.values() if s.state == "running"]


@dataclass
class Change:
    """One transition of a run: what to write, and the events that report it."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[RunEvent, dict[str, Any]]] = field(default_factory=list)
    checkpoints: dict[str, CheckpointRow] = field(default_factory=dict)
    """Checkpoints requested or resolved by the change, by id."""
    audit: list[tuple[str, AuditAction, dict[str, Any], CheckpointRow | None]] = field(
        default_factory=list
    )
    """Audit entries: ``(actor, action, detail, the checkpoint they are about)``."""

    def step(self, step_id: str, **fields: Any) -> None:
        self.steps.setdefault(step_id, {}).update(fields)

    def checkpoint(self, row: CheckpointRow) -> None:
        """Save ``row`` and report it: ``checkpoint.requested`` or ``checkpoint.resolved``."""
        self.checkpoints[row.checkpoint_id] = row
        if row.state == "pending":
            self.events.append(("checkpoint.requested", checkpoints.requested_data(row)))
        else:
            self.events.append(("checkpoint.resolved", checkpoints.resolved_data(row)))


class Runs:
    def __init__(
        self,
        context: RuntimeContext,
        sessions: Sessions,
        admitter: Admitter,
        termination: Termination,
    ) -> None:
        self._context = context
        self._sessions = sessions
        self._admitter = admitter
        self._termination = termination
        self._live: dict[str, LiveRun] = {}
        self._task_steps: dict[str, tuple[str, str]] = {}
        """The task of each running step attempt -> ``(run_id, step_id)``."""
        self._parsed: dict[tuple[str, str], ParsedDefinition] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._ended: list[TaskRow] = []
        """Tasks of steps that ended and whose steps have not moved yet (:meth:`_drain`)."""
        self._drain_scheduled = False
        self._rng = random.Random(secrets.randbits(128))
        self._metrics = RunMetrics(context.metrics)
        self._children = ChildRuns(self)
        context.task_ended.append(self._task_ended)
        context.session_ending.append(self.abort_session)

    @property
    def limits(self) -> DefinitionLimits:
        config = self._context.config
        return DefinitionLimits(config.max_run_steps, config.max_definition_bytes)

    # ------------------------------------------------------------ definitions

    def register(self, parsed: ParsedDefinition) -> tuple[Definition, bool]:
        """Register ``parsed``; ``(definition, created)``. The same name@version with another
        document is 409 ``CONFLICT``; with the same document, the stored one (ORCH-0313)."""
        store = self._context.store
        digest = parsed.digest()
        existing = store.get_definition(parsed.name, parsed.version)
        if existing is None:
            try:
                check_children(parsed, self._definition)
            except DefinitionError as exc:
                raise definition_error(exc) from None
        if existing is not None:
            if existing.digest != digest:
                raise ApiError(
                    ErrorKind.CONFLICT,
                    f"definition {parsed.name}@{parsed.version} is already registered with "
                    "another document; versions are immutable",
                    details={"digest": existing.digest},
                )
            return definition_view(existing), False
        row = DefinitionRow(
            parsed.name, parsed.version, digest, parsed.normalized(), self._context.clock.now_ms()
        )
        with store.transaction():
            store.insert_definition(row)
        self._parsed[(row.name, row.version)] = parsed
        return definition_view(row), True

    def definition(self, name: str, version: str) -> Definition:
        row = self._context.store.get_definition(name, version)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"definition {name}@{version} not found")
        return definition_view(row)

    def definitions(self) -> DefinitionList:
        return DefinitionList(
            definitions=[definition_summary(r) for r in self._context.store.definitions()]
        )

    def _definition(self, name: str, version: str) -> ParsedDefinition | None:
        key = (name, version)
        parsed = self._parsed.get(key)
        if parsed is None:
            row = self._context.store.get_definition(name, version)
            if row is None:
                return None
            # Stored documents were valid when registered; a limit lowered since does not
            # make a registered definition unusable.
            parsed = validate_definition(row.document, DefinitionLimits(10**9, 10**12))
            self._parsed[key] = parsed
        return parsed

    # ------------------------------------------------------------ runs

    def create(self, body: RunCreate, actor: str) -> Run:
        """Create a run: committed with its ``run.started`` event and its audit entry
        (ORCH-0381), then its first steps start."""
        context = self._context
        parsed = self._definition(body.definition, body.version)
        if parsed is None:
            raise ApiError(
                ErrorKind.NOT_FOUND, f"definition {body.definition}@{body.version} not found"
            )
        session = self._sessions.active(body.session_id)
        try:
            inputs = check_inputs(parsed.document, body.inputs)
        except InputError as exc:
            raise ApiError(ErrorKind.INVALID_PARAMS, str(exc), details={"path": exc.path}) from None
        for position, step in enumerate(parsed.document.steps):
            if step.run is None and step.pool not in context.pools:
                raise ApiError(
                    ErrorKind.NOT_FOUND,
                    f"pool {step.pool!r} of step {step.id!r} (steps[{position}].pool) not found",
                )
        seed = body.seed if body.seed is not None else self._rng.randrange(MAX_SERVER_RUN_SEED)
        run, write = self.prepare_run(
            parsed, session.session_id, inputs, seed, body.max_parallel, actor
        )
        with context.store.transaction():
            write()
        self.launch(run)
        return self._run_view(run.row, run.steps.values(), run.attempts, run.parent, run.children)

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
        context = self._context
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
        started = _event_row(run, 1, "run.started", _run_started(row))
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

    def launch(self, run: LiveRun) -> None:
        """Show a run :meth:`prepare_run` made, once written, and start its first steps."""
        run.channel.reveal(1)
        self._metrics.record(
            [("run.started", {})], lambda step_id: self._start_delay(run, step_id), {}
        )
        self._live[run.run_id] = run
        self._advance(run)

    def live_run(self, run_id: str) -> LiveRun | None:
        return self._live.get(run_id)

    def get(self, run_id: str) -> Run:
        run = self._live.get(run_id)
        if run is not None:
            return self._run_view(
                run.row, run.steps.values(), run.attempts, run.parent, run.children
            )
        store = self._context.store
        row = store.get_run(run_id)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
        attempts: dict[str, list[StepAttemptRow]] = {}
        for attempt in store.step_attempts(run_id):
            attempts.setdefault(attempt.step_id, []).append(attempt)
        return self._run_view(
            row,
            store.run_steps(run_id),
            attempts,
            store.parent_of(run_id),
            stored_children(store.children_of(run_id)),
        )

    def listing(
        self,
        *,
        state: RunState | None,
        definition: str | None,
        created_after: str | None,
        created_before: str | None,
        cursor: str | None,
        limit: int,
    ) -> RunList:
        """Runs in creation order, filtered, a page at a time (ORCH-0323)."""
        after = None
        if cursor:
            created_ms, (run_id,) = decode_cursor(cursor)
            after = (created_ms, run_id)
        rows = self._context.store.list_runs(
            state=state,
            definition=definition,
            created_from_ms=parse_time(created_after, "created_after"),
            created_before_ms=parse_time(created_before, "created_before"),
            after=after,
            limit=limit + 1,
        )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = encode_cursor(page[-1].created_ms, page[-1].run_id) if more else None
        return RunList(
            runs=[run_summary(r) for r in page],
            next_cursor=next_cursor,
        )

    def abort(self, run_id: str, actor: str) -> Run:
        """Abort a run not ended, durable when this returns; 409 for an ended run (ORCH-0324)."""
        self._land_task_ends()
        run = self._live.get(run_id)
        if run is None:
            row = self._context.store.get_run(run_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
            raise ApiError(
                ErrorKind.CONFLICT,
                f"run {run_id!r} already ended ({row.state})",
                details={"state": row.state},
            )
        self._abort(run, "aborted by the client", actor)
        return self.get(run_id)

    def abort_session(self, session_id: str) -> None:
        """The session ends: each of its running runs is aborted (ORCH-0333)."""
        self._land_task_ends()
        for run in [r for r in self._live.values() if r.row.session_id == session_id]:
            if not run.ended:  # a child run may have ended with its parent (ORCH-0492)
                self._abort(run, "session ended", SYSTEM)

    # ------------------------------------------------------------ checkpoints and audit

    def decide(self, run_id: str, checkpoint_id: str, body: CheckpointDecision) -> Approval:
        """Decide a pending checkpoint: the decision, its effects, its events and its audit
        entry in one commit (ORCH-0366..0370, ORCH-0381)."""
        self._land_task_ends()
        run = self._live.get(run_id)
        if run is None:
            checkpoints.refuse_decision(self._context.store, run_id, checkpoint_id)
        row = run.checkpoints.get(checkpoint_id)
        if row is None:
            raise ApiError(
                ErrorKind.NOT_FOUND, f"run {run_id!r} has no checkpoint {checkpoint_id!r}"
            )
        retry_inputs = checkpoints.check_decision(
            row, body, run.definition.document, run.row.inputs
        )
        now = self._context.clock.now_ms()
        decided = CheckpointRow(
            **{
                **vars(row),
                "state": "decided",
                "decided_ms": now,
                "decision": body.decision,
                "decided_by": body.decided_by,
                "prompt": body.prompt,
                "inputs": retry_inputs,
            }
        )
        change = Change()
        change.checkpoint(decided)
        detail: dict[str, Any] = {"decision": body.decision}
        if body.prompt is not None:
            detail["prompt"] = body.prompt
        if body.inputs is not None:
            detail["inputs"] = body.inputs
        change.audit.append((body.decided_by, "checkpoint.decided", detail, decided))
        step_id = row.step_id
        start = False
        if body.decision == "abort":
            change.step(step_id, state="skipped", finished_ms=now, retry_at_ms=None)
            change.events.append(("step.skipped", {"step_id": step_id}))
            self._abort(run, f"aborted at checkpoint {checkpoint_id}", None, change)
            return checkpoints.approval_view(decided)
        if body.decision == "skip":
            change.step(step_id, state="skipped", finished_ms=now, retry_at_ms=None)
            change.events.append(("step.skipped", {"step_id": step_id}))
        elif body.decision == "continue" and row.when == "after":
            task_id = next((a.task_id for a in reversed(run.attempts[step_id]) if a.task_id), "")
            change.step(step_id, state="succeeded", output=row.output, finished_ms=now)
            change.events.append(
                ("step.succeeded", {"step_id": step_id, "task_id": task_id, "output": row.output})
            )
        else:  # continue before the first attempt, or retry: the next attempt starts now
            # retry_at_ms marks the attempt as due, so a restart before its admission
            # starts it rather than taking the last task's outcome again (ORCH-0372).
            change.step(step_id, state="running", retry_at_ms=now)
            start = True
        if not [c for c in checkpoints.pending(run.checkpoints.values()) if c is not row]:
            change.run.update(state="running")
        self._commit(run, change)
        if start:
            self._start_attempt(run, step_id)
        self._advance(run)
        return checkpoints.approval_view(decided)

    def _land_task_ends(self) -> None:
        """Commit the task ends waiting in the journal, so their steps take them first: a
        step whose task completed is not aborted as if it were still running."""
        self._context.journal.commit_now()
        self._drain()

    def _abort(
        self, run: LiveRun, why: str, actor: str | None, change: Change | None = None
    ) -> None:
        """End the run ``aborted`` in one commit with ``change`` (a decision to abort, whose
        own audit entry records it: ``actor`` ``None``)."""
        change = change or Change()
        cancelled = task_error(ErrorKind.CANCELLED, f"run {why}")
        now = self._context.clock.now_ms()
        tasks: list[str] = []
        self._cancel_checkpoints(run, change, now)
        for step in _in_order(run):
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
        self._commit(run, change)
        self._cancel_tasks(tasks, f"run {why}")

    def _cancel_tasks(self, task_ids: list[str], why: str) -> None:
        """Cancel the tasks of steps that ended with their run (ORCH-0324)."""
        context = self._context
        for task_id in task_ids:
            self._task_steps.pop(task_id, None)
            lt = context.live.get(task_id)
            if lt is not None and not lt.finished:
                self._termination.cancel(lt, why)
        context.journal.commit_now()

    def stream(self, run_id: str, after: int) -> StreamSource:
        run = self._live.get(run_id)
        if run is not None:
            return StreamSource(run.channel, [])
        store = self._context.store
        if store.get_run(run_id) is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
        return StreamSource(None, store.run_events(run_id, after))

    # ------------------------------------------------------------ scheduling

    def _advance(self, run: LiveRun) -> None:
        """Decide what happens next: skip, end the run, pause it, or start ready steps."""
        if run.ended:
            return
        change = Change()
        now = self._context.clock.now_ms()
        states = {s.step_id: s.state for s in run.steps.values()}
        if any(state == "failed" for state in states.values()):
            self._cancel_checkpoints(run, change, now)
            for step in _in_order(run):
                if step.state == "pending" and step.step_id not in run.admitting:
                    change.step(step.step_id, state="skipped", finished_ms=now)
                    change.events.append(("step.skipped", {"step_id": step.step_id}))
            busy = len({s.step_id for s in run.running()} | run.admitting)
            if busy == 0:
                failed = next(s for s in _in_order(run) if s.state == "failed")
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
                self._commit(run, change)
            return
        declared = {s.id: s for s in run.definition.document.steps}
        for step in _in_order(run):  # the dependants of a skipped step (ORCH-0376)
            needs = declared[step.step_id].depends_on
            if states[step.step_id] == "pending" and any(states[d] == "skipped" for d in needs):
                states[step.step_id] = "skipped"
                change.step(step.step_id, state="skipped", finished_ms=now)
                change.events.append(("step.skipped", {"step_id": step.step_id}))
        if all(state in ("succeeded", "skipped") for state in states.values()):
            change.run.update(state="completed", finished_ms=now)
            change.events.append(("run.completed", {"run_id": run.run_id}))
            self._commit(run, change)
            return
        if checkpoints.pending(run.checkpoints.values()):
            if run.row.state != "awaiting_approval":
                change.run.update(state="awaiting_approval")
            if change.steps or change.run:
                self._commit(run, change)
            return  # no step starts while a checkpoint is pending (ORCH-0363)
        if run.row.state != "running":
            change.run.update(state="running")
        busy = len(
            {s.step_id for s in run.steps.values() if s.state in ("running", "waiting_approval")}
            | run.admitting
        )
        ready: list[str] = []
        for step in _in_order(run):
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
            self._commit(run, change)
        # Tasks first: a step with child runs may end at once (no item) and advance the
        # run again, which must find these steps already admitting.
        for step_id in ready:
            if declared[step_id].run is None:
                self._start_attempt(run, step_id)
        for step_id in ready:
            if declared[step_id].run is not None:
                self._children.evaluate(run, step_id)

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

    def _start_attempt(self, run: LiveRun, step_id: str) -> None:
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
            self._resync_later(run.run_id)
            return
        except Exception:  # a bug: the step fails, the other runs go on (ORCH-0173)
            run.admitting.discard(step_id)
            log.exception("run %s: starting step %s failed", run.run_id, step_id)
            failure = task_error(ErrorKind.INTERNAL, "internal error starting the step")
            self._step_failed(run, step_id, failure, final=True)
            return
        run.admitting.discard(step_id)
        if run.ended:  # aborted while the admission was committing
            self._cancel_tasks([admitted.task_id], "run aborted")
        elif not run.admitting:
            self._advance(run)  # a checkpoint may wait for these admissions (ORCH-0363)

    def _record_attempt(self, run: LiveRun, step_id: str, number: int, task_id: str) -> None:
        """Joined to the task's admission commit: the attempt row and ``step.started``."""
        store = self._context.store
        now = self._context.clock.now_ms()
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
        self._commit(run, change, also=lambda: store.insert_step_attempt(attempt))
        self._task_steps[task_id] = (run.run_id, step_id)
        run.attempts[step_id].append(attempt)

    def _refused_attempt(
        self, run: LiveRun, step_id: str, number: int, error: dict[str, Any]
    ) -> None:
        """An attempt whose task the server refused to admit (a full queue, an unready pool)."""
        if run.ended:
            return
        store = self._context.store
        now = self._context.clock.now_ms()
        attempt = StepAttemptRow(run.run_id, step_id, number, None, error, now)
        try:
            change = Change()
            if run.steps[step_id].started_ms is None:
                change.step(step_id, state="running", started_ms=now)
            self._commit(run, change, also=lambda: store.insert_step_attempt(attempt))
        except StoreError as exc:
            log.warning("run %s: cannot record a refused attempt: %s", run.run_id, exc)
            self._resync_later(run.run_id)
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
        if not self._context.running:  # stopped: a restart derives the steps again
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
                self._apply_outcome(run, found[1], row)
            except StoreError as exc:
                log.warning("run %s: cannot record step %s: %s", run.run_id, found[1], exc)
                self._resync_later(run.run_id)

    def _apply_outcome(self, run: LiveRun, step_id: str, task: TaskRow) -> None:
        if task.state == "completed":
            output = self._context.store.task_output(task.task_id)
            change = Change()
            checkpoint = run.definition.document.steps[run.steps[step_id].position].checkpoint
            if checkpoint is not None and checkpoint.when == "after":
                now = self._context.clock.now_ms()
                self._request_checkpoint(run, change, step_id, output, now)
                self._commit(run, change)
                self._advance(run)
                return
            change.step(
                step_id,
                state="succeeded",
                output=output,
                finished_ms=self._context.clock.now_ms(),
            )
            change.events.append(
                (
                    "step.succeeded",
                    {"step_id": step_id, "task_id": task.task_id, "output": output},
                )
            )
            self._commit(run, change)
            self._advance(run)
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
        now = self._context.clock.now_ms()
        change = Change()
        if not final and made < retry.max_attempts:
            wait = backoff_ms(
                made, retry.backoff_base_ms, retry.backoff_cap_ms, retry.jitter_ms, self._rng
            )
            change.step(step_id, state="running", retry_at_ms=now + wait)
            self._commit(run, change)
            self._retry_at(run, step_id, wait)
            return
        if declared.on_failure == "hold" and not run.ended:
            change.step(step_id, retry_at_ms=None)
            self._request_checkpoint(run, change, step_id, None, now, error)
            self._commit(run, change)
            self._advance(run)
            return
        change.step(step_id, state="failed", error=error, finished_ms=now, retry_at_ms=None)
        change.events.append(("step.failed", {"step_id": step_id, "error": error}))
        self._commit(run, change)
        self._advance(run)

    def _retry_at(self, run: LiveRun, step_id: str, wait_ms: int) -> None:
        def due() -> None:
            run.timers.pop(step_id, None)
            if not run.ended and run.steps[step_id].state == "running":
                self._start_attempt(run, step_id)

        loop = asyncio.get_running_loop()
        run.timers[step_id] = loop.call_later(max(0, wait_ms) / 1000, due)

    # ------------------------------------------------------------ the store

    def _commit(self, run: LiveRun, change: Change, also: Any = None) -> None:
        """Write ``change`` (and ``also``) in one transaction, then show it: rows, then events."""
        store = self._context.store
        base = len(run.channel.events)
        rows = [
            _event_row(run, base + number, event, data)
            for number, (event, data) in enumerate(change.events, start=1)
        ]
        now = self._context.clock.now_ms()
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
                self._context.write_run_events(rows)
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
        return declared.pool, max(0, self._context.clock.now_ms() - ready) / 1000

    def _end(self, run: LiveRun) -> None:
        for timer in run.timers.values():
            timer.cancel()
        run.timers.clear()
        run.channel.close()
        self._live.pop(run.run_id, None)
        self._children.run_ended(run)

    # ------------------------------------------------------------ restart

    def resume(self) -> None:
        """Rebuild every running run from the store and go on (ORCH-0341..0343), and cancel
        the tasks of runs whose abort was committed by a process that died before it
        cancelled them (ORCH-0324)."""
        store = self._context.store
        self._metrics.restore(store.pending_checkpoint_counts())
        for row in store.live_runs():
            self._resume_run(row)
        orphans = store.live_tasks_of_ended_runs()
        if orphans:
            self._cancel_tasks(orphans, "run aborted")

    def _resume_run(self, row: RunRow) -> None:
        store = self._context.store
        parsed = self._definition(row.definition, row.version)
        if parsed is None:  # a foreign key makes this impossible
            return
        steps = {s.step_id: s for s in store.run_steps(row.run_id)}
        attempts: dict[str, list[StepAttemptRow]] = {s: [] for s in steps}
        for attempt in store.step_attempts(row.run_id):
            attempts[attempt.step_id].append(attempt)
        run = LiveRun(
            row,
            parsed,
            steps,
            attempts,
            TaskChannel(store.run_events(row.run_id)),
            checkpoints={c.checkpoint_id: c for c in store.run_checkpoints(row.run_id)},
            audit_seq=len(store.audit_entries(row.run_id)),
            parent=store.parent_of(row.run_id),
            children=stored_children(store.children_of(row.run_id)),
        )
        self._live[row.run_id] = run
        ended: list[tuple[str, TaskRow]] = []
        now = self._context.clock.now_ms()
        for step in _in_order(run):
            if step.state != "running" or parsed.child_inputs.get(step.step_id) is not None:
                continue  # a step with child runs goes on in ChildRuns.resume
            made = attempts[step.step_id]
            task_id = made[-1].task_id if made else None
            task = store.get_task(task_id) if task_id is not None else None
            if task is not None and task.state in ("queued", "running"):
                self._task_steps[task.task_id] = (row.run_id, step.step_id)
            elif task is not None and step.retry_at_ms is None:
                ended.append((step.step_id, task))
            else:  # waiting for a retry, or crashed before its admission
                self._retry_at(run, step.step_id, (step.retry_at_ms or now) - now)
        for step_id, task in ended:
            self._apply_outcome(run, step_id, task)
        self._advance(run)
        self._children.resume(run)

    def _resync_later(self, run_id: str) -> None:
        """Derive the run again from the store after a write failed."""

        def resync() -> None:
            run = self._live.pop(run_id, None)
            if run is None:
                return
            for timer in run.timers.values():
                timer.cancel()
            for task_id, (owner, _) in list(self._task_steps.items()):
                if owner == run_id:
                    del self._task_steps[task_id]
            row = self._context.store.get_run(run_id)
            try:
                if row is not None and row.state not in RUN_TERMINAL_STATES:
                    self._resume_run(row)
                else:
                    run.channel.close()
            except StoreError:
                self._live.setdefault(run_id, run)
                self._resync_later(run_id)

        asyncio.get_running_loop().call_later(RESYNC_DELAY_S, resync)

    def _run_view(
        self,
        row: RunRow,
        steps: Any,
        attempts: dict[str, list[StepAttemptRow]],
        parent: ChildRow | None,
        children: dict[str, dict[int, str]],
    ) -> Run:
        parsed = self._definition(row.definition, row.version)
        return run_view(row, steps, attempts, parsed, parent, children)

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


def _in_order(run: LiveRun) -> list[StepRow]:
    return sorted(run.steps.values(), key=lambda s: s.position)


def _event_row(
    run: LiveRun, seq: int, event: RunEvent, data: dict[str, Any]
) -> tuple[str, int, str, str]:
    payload = json.dumps(data, separators=(", ", ": "), ensure_ascii=False)
    return (run.run_id, seq, event, payload)


def _run_started(row: RunRow) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "definition": row.definition,
        "version": row.version,
        "seed": row.seed,
    }


def definition_error(exc: DefinitionError) -> ApiError:
    """400 ``INVALID_DEFINITION`` naming the field (ORCH-0308)."""
    return ApiError(ErrorKind.INVALID_DEFINITION, str(exc), details={"path": exc.path})

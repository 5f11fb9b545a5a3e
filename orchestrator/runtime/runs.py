"""Multi-step runs as the API serves them: create, read, list, abort, decide, stream.

A run is a DAG of steps (spec section 12), every step run as an ordinary task.
This module answers the run operations; :mod:`.definitions` keeps the
definitions, :mod:`.scheduler` drives live runs and makes every change durable,
:mod:`.run_restart` rebuilds them after a restart. Invariants:

- **Durable when answered.** A created run is committed with its ``run.started``
  event and its audit entry (ORCH-0381); an abort is committed when it returns
  (ORCH-0324); a decision, its effects, its events and its audit entry are one
  commit (:mod:`.checkpoints`, :mod:`.audit`).
- **Task ends land first.** An abort or a decision first commits the task ends
  waiting in the journal, so a step whose task completed is not taken for running.
- **Refused up front.** A run whose steps, or the steps of any child definition
  they reach, name a pool that does not exist is refused at creation (ORCH-0495).
"""

from __future__ import annotations

import random
import secrets
from typing import Any

from orchestrator.errors import ApiError
from orchestrator.runs.children import unknown_pool
from orchestrator.runs.inputs import InputError, check_inputs
from orchestrator.runtime import checkpoints
from orchestrator.runtime.admission import Admitter
from orchestrator.runtime.audit import SYSTEM
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.definitions import Definitions
from orchestrator.runtime.live_runs import Change
from orchestrator.runtime.run_restart import rebuild, resume
from orchestrator.runtime.run_views import (
    decode_cursor,
    encode_cursor,
    parse_time,
    run_summary,
    run_view,
    stored_children,
)
from orchestrator.runtime.scheduler import Scheduler
from orchestrator.runtime.sessions import Sessions
from orchestrator.runtime.streams import StreamSource
from orchestrator.runtime.termination import Termination
from orchestrator.schemas import Approval, CheckpointDecision, Run, RunCreate, RunList
from orchestrator.store import CheckpointRow, ChildRow, RunRow, StepAttemptRow
from orchestrator.vocabulary import ErrorKind, RunState

MAX_SERVER_RUN_SEED = 2**31
"""Run seeds the server picks fit in 31 bits, like task seeds."""
MAX_LIST_LIMIT = 100


class Runs:
    def __init__(
        self,
        context: RuntimeContext,
        sessions: Sessions,
        admitter: Admitter,
        termination: Termination,
        definitions: Definitions,
    ) -> None:
        self._context = context
        self._sessions = sessions
        self._lookup = definitions.lookup
        self._scheduler = Scheduler(context, admitter, termination, definitions.lookup, rebuild)
        self._rng = random.Random(secrets.randbits(128))
        context.session_ending.append(self.abort_session)

    # ------------------------------------------------------------ runs

    def create(self, body: RunCreate, actor: str) -> Run:
        """Create a run: committed with its ``run.started`` event and its audit entry
        (ORCH-0381), then its first steps start."""
        context = self._context
        parsed = self._lookup(body.definition, body.version)
        if parsed is None:
            raise ApiError(
                ErrorKind.NOT_FOUND, f"definition {body.definition}@{body.version} not found"
            )
        session = self._sessions.active(body.session_id)
        try:
            inputs = check_inputs(parsed.document, body.inputs)
        except InputError as exc:
            raise ApiError(ErrorKind.INVALID_PARAMS, str(exc), details={"path": exc.path}) from None
        missing_pool = unknown_pool(parsed, self._lookup, context.pools)
        if missing_pool is not None:  # also of a descendant (ORCH-0318, ORCH-0495)
            raise ApiError(ErrorKind.NOT_FOUND, missing_pool)
        seed = body.seed if body.seed is not None else self._rng.randrange(MAX_SERVER_RUN_SEED)
        run, write = self._scheduler.prepare_run(
            parsed, session.session_id, inputs, seed, body.max_parallel, actor
        )
        with context.store.transaction():
            write()
        self._scheduler.launch(run)
        return self._run_view(run.row, run.steps.values(), run.attempts, run.parent, run.children)

    def get(self, run_id: str) -> Run:
        run = self._scheduler.live_run(run_id)
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
        self._scheduler.land_task_ends()
        run = self._scheduler.live_run(run_id)
        if run is None:
            row = self._context.store.get_run(run_id)
            if row is None:
                raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
            raise ApiError(
                ErrorKind.CONFLICT,
                f"run {run_id!r} already ended ({row.state})",
                details={"state": row.state},
            )
        self._scheduler.abort(run, "aborted by the client", actor)
        return self.get(run_id)

    def abort_session(self, session_id: str) -> None:
        """The session ends: each of its running runs is aborted (ORCH-0333)."""
        self._scheduler.land_task_ends()
        for run in [r for r in self._scheduler.live_runs() if r.row.session_id == session_id]:
            if not run.ended:  # a child run may have ended with its parent (ORCH-0492)
                self._scheduler.abort(run, "session ended", SYSTEM)

    # ------------------------------------------------------------ checkpoints and audit

    def decide(self, run_id: str, checkpoint_id: str, body: CheckpointDecision) -> Approval:
        """Decide a pending checkpoint: the decision, its effects, its events and its audit
        entry in one commit (ORCH-0366..0370, ORCH-0381)."""
        self._scheduler.land_task_ends()
        run = self._scheduler.live_run(run_id)
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
            self._scheduler.abort(run, f"aborted at checkpoint {checkpoint_id}", None, change)
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
        self._scheduler.commit(run, change)
        if start:
            self._scheduler.start_attempt(run, step_id)
        self._scheduler.advance(run)
        return checkpoints.approval_view(decided)

    def stream(self, run_id: str, after: int) -> StreamSource:
        run = self._scheduler.live_run(run_id)
        if run is not None:
            return StreamSource(run.channel, [])
        store = self._context.store
        if store.get_run(run_id) is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
        return StreamSource(None, store.run_events(run_id, after))

    def resume(self) -> None:
        """Rebuild every running run from the store and go on (:mod:`.run_restart`)."""
        resume(self._scheduler)

    def stop(self) -> None:
        self._scheduler.stop()

    def _run_view(
        self,
        row: RunRow,
        steps: Any,
        attempts: dict[str, list[StepAttemptRow]],
        parent: ChildRow | None,
        children: dict[str, dict[int, str]],
    ) -> Run:
        parsed = self._lookup(row.definition, row.version)
        return run_view(row, steps, attempts, parsed, parent, children)

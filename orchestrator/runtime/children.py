"""Steps that run child runs (ORCH-0480..0494): the scheduler's hook for sub-orchestrations.

A step with ``run`` admits no task: it creates child runs, ordinary runs of the
same session made by :meth:`RunDriver.prepare_run`, and ends with them. Invariants:

- **Derived, not counted.** What a step does next (create the lowest items
  missing while fewer than ``for_each.max_parallel`` children run; succeed once
  all completed; fail) follows from its children's states alone
  (:func:`~orchestrator.runs.children.next_move`), so :meth:`evaluate` may run
  any number of times, also after a restart, with the same result.
- **One child per item.** A child run, its link to the parent step, its
  ``child.started`` event and the parent step's change are one commit; the
  link's primary key refuses a second child for the same item (ORCH-0487).
- **No orphans.** A run that ends aborts each child not ended, and each child
  its own in turn; after a restart, a child whose parent ended is aborted
  (ORCH-0492).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.errors import task_error
from orchestrator.runs import ParsedDefinition
from orchestrator.runs.children import Lookup, aggregate, child_seed, fan_out_items, next_move
from orchestrator.runs.inputs import InputError, check_inputs
from orchestrator.runtime.audit import SYSTEM
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.live_runs import Change, LiveRun
from orchestrator.store import ChildRow, StoreError
from orchestrator.vocabulary import RUN_TERMINAL_STATES, ErrorKind, RunEvent, RunState

log = logging.getLogger("orchestrator.runs")

PARENT_ENDED = "aborted: parent run ended"
"""Why a child run is aborted with its parent: its message is ``run aborted: parent run ended``."""
SIBLING_FAILED = "aborted: another child run of its step failed"


class RunDriver(Protocol):
    """What child runs need of the :class:`~orchestrator.runtime.scheduler.Scheduler`:
    make, show and find runs, commit, advance and abort them."""

    context: RuntimeContext
    lookup: Lookup

    def prepare_run(
        self,
        parsed: ParsedDefinition,
        session_id: str,
        inputs: dict[str, Any],
        seed: int,
        max_parallel: int,
        actor: str,
        parent: ChildRow | None = None,
    ) -> tuple[LiveRun, Callable[[], None]]: ...

    def launch(self, run: LiveRun) -> None: ...

    def live_run(self, run_id: str) -> LiveRun | None: ...

    def commit(self, run: LiveRun, change: Change, also: Any = None) -> None: ...

    def advance(self, run: LiveRun) -> None: ...

    def abort(
        self, run: LiveRun, why: str, actor: str | None, change: Change | None = None
    ) -> None: ...

    def resync_later(self, run_id: str) -> None: ...


class ChildRuns:
    """Creates, follows and aborts the child runs of the steps of the runs ``runs`` drives."""

    def __init__(self, runs: RunDriver) -> None:
        self._runs = runs

    # ------------------------------------------------------------ the parent step

    def evaluate(self, run: LiveRun, step_id: str) -> None:
        """Take the step's next move: create children, or end the step (ORCH-0487..0491)."""
        step = run.steps[step_id]
        if run.ended or step.state not in ("pending", "running"):
            return
        declared = run.definition.document.steps[step.position]
        assert declared.run is not None
        for_each = declared.for_each
        items = fan_out_items(declared, run.row.inputs)
        created = run.children.get(step_id, {})
        states = {item: self._state(child_id) for item, child_id in created.items()}
        move = next_move(
            len(items),
            states,
            for_each.max_parallel if for_each is not None else 1,
            for_each is None or for_each.on_failure == "fail_fast",
        )
        try:
            if move.outcome == "completed":
                outputs = [self._output(created[item]) for item in range(len(items))]
                self._succeed(run, step_id, aggregate(outputs, for_each is not None))
            elif move.outcome == "failed":
                assert move.failed_item is not None
                self._fail(run, step_id, self._error(created[move.failed_item]))
            for item in move.create:
                if not self._create(run, step_id, item, items[item]):
                    return
        except StoreError as exc:
            log.warning("run %s: cannot move step %s: %s", run.run_id, step_id, exc)
            self._runs.resync_later(run.run_id)

    def _create(self, run: LiveRun, step_id: str, item: int, value: str) -> bool:
        """Create the child of ``item`` in one commit with its link and ``child.started``
        (ORCH-0485, ORCH-0489); ``False`` when its inputs fail the step (ORCH-0486)."""
        runs = self._runs
        step = run.steps[step_id]
        declared = run.definition.document.steps[step.position]
        assert declared.run is not None
        child_definition = runs.lookup(declared.run.definition, declared.run.version)
        assert child_definition is not None  # registered before its parent (ORCH-0483)
        outputs = {d: run.steps[d].output or "" for d in declared.depends_on}
        rendered = {
            name: template.render(run.row.inputs, outputs)
            for name, template in run.definition.child_inputs[step_id].items()
        }
        fan_out = declared.for_each is not None
        if declared.for_each is not None:
            rendered[declared.for_each.as_] = value
        try:
            inputs = check_inputs(child_definition.document, rendered)
        except InputError as exc:
            self._fail(run, step_id, task_error(ErrorKind.INVALID_PARAMS, f"item {item}: {exc}"))
            return False
        child, write = runs.prepare_run(
            child_definition,
            run.row.session_id,
            inputs,
            child_seed(step.seed, item, fan_out),
            run.row.max_parallel,
            SYSTEM,
            ChildRow(run.run_id, step_id, item, ""),
        )
        change = Change()
        if step.state == "pending":
            change.step(step_id, state="running", started_ms=self._now())
        change.events.append(
            ("child.started", {"step_id": step_id, "item": item, "child_run_id": child.run_id})
        )
        runs.commit(run, change, also=write)
        run.children.setdefault(step_id, {})[item] = child.run_id
        runs.launch(child)
        return True

    def _succeed(self, run: LiveRun, step_id: str, output: str) -> None:
        event = {"step_id": step_id, "task_id": None, "output": output}
        self._end_step(
            run, step_id, {"state": "succeeded", "output": output}, "step.succeeded", event
        )

    def _fail(self, run: LiveRun, step_id: str, error: dict[str, Any]) -> None:
        """Fail the step and abort its children still running (ORCH-0491)."""
        event = {"step_id": step_id, "error": error}
        self._end_step(run, step_id, {"state": "failed", "error": error}, "step.failed", event)

    def _end_step(
        self,
        run: LiveRun,
        step_id: str,
        fields: dict[str, Any],
        event: RunEvent,
        data: dict[str, Any],
    ) -> None:
        change = Change()
        now = self._now()
        fields = {**fields, "finished_ms": now}
        if run.steps[step_id].started_ms is None:
            fields["started_ms"] = now
        change.step(step_id, **fields)
        change.events.append((event, data))
        self._runs.commit(run, change)
        if fields["state"] == "failed":
            self._abort_children(run.children.get(step_id, {}).values(), SIBLING_FAILED)
        self._runs.advance(run)

    # ------------------------------------------------------------ child runs

    def run_ended(self, run: LiveRun) -> None:
        """A run ended: abort its children not ended (ORCH-0492); tell its parent step."""
        for step_children in run.children.values():
            self._abort_children(step_children.values(), PARENT_ENDED)
        parent = run.parent
        if parent is None:
            return
        owner = self._runs.live_run(parent.parent_run_id)
        if owner is not None:  # later, never inside the child's own commit
            asyncio.get_running_loop().call_soon(self.evaluate, owner, parent.parent_step_id)

    def _abort_children(self, child_ids: Any, why: str) -> None:
        for child_id in list(child_ids):
            child = self._runs.live_run(child_id)
            if child is not None and not child.ended:
                self._runs.abort(child, why, SYSTEM)

    def resume(self, run: LiveRun) -> None:
        """After a restart: abort a child whose parent ended meanwhile, and let each step
        waiting on children go on once every run is live again (ORCH-0492, ORCH-0494)."""
        loop = asyncio.get_running_loop()
        loop.call_soon(self._resumed, run)

    def _resumed(self, run: LiveRun) -> None:
        if run.ended:
            return
        parent = run.parent
        if parent is not None and self._state(parent.parent_run_id) in RUN_TERMINAL_STATES:
            self._runs.abort(run, PARENT_ENDED, SYSTEM)
            return
        for step in list(run.steps.values()):
            if step.state == "running" and step.step_id in run.definition.child_inputs:
                self.evaluate(run, step.step_id)

    # ------------------------------------------------------------ reading children

    def _state(self, run_id: str) -> RunState:
        live = self._runs.live_run(run_id)
        if live is not None:
            return live.row.state
        row = self._runs.context.store.get_run(run_id)
        return row.state if row is not None else "aborted"

    def _output(self, run_id: str) -> str:
        """The output of the child's last step in its definition's order (ORCH-0490)."""
        steps = self._runs.context.store.run_steps(run_id)
        return steps[-1].output or "" if steps else ""

    def _error(self, run_id: str) -> dict[str, Any]:
        """The error of the child's ``run.failed``, or ``CANCELLED`` when aborted (ORCH-0491)."""
        store = self._runs.context.store
        row = store.get_run(run_id)
        if row is not None and row.state == "failed":
            for step in store.run_steps(run_id):
                if step.state == "failed" and step.error is not None:
                    return step.error
        return task_error(ErrorKind.CANCELLED, f"child run {run_id} was aborted")

    def _now(self) -> int:
        return self._runs.context.clock.now_ms()

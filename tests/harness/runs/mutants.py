"""orchestratord with one requirement of section 12 broken: the runs checks must catch each.

Each mutation patches orchestratord's own runs code for the whole process (an
inner conformance run starts its servers in it); none reaches into a
dependency. Each breaks one rule and nothing else, so the check that catches it
must fail naming that rule's ID.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import orchestrator.runs.definition
import orchestrator.runtime.checkpoints
import orchestrator.runtime.children
import orchestrator.runtime.runs
import orchestrator.runtime.scheduler
from orchestrator.runs.children import FanOutState
from orchestrator.runs.templates import InputRef, Template
from orchestrator.runtime.children import ChildRuns
from orchestrator.runtime.live_runs import Change
from orchestrator.runtime.scheduler import Scheduler
from orchestrator.store import CheckpointRow
from orchestrator.vocabulary import RunState


def steps_ignore_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step starts without waiting for its dependencies (ORCH-0326)."""
    monkeypatch.setattr(orchestrator.runtime.scheduler, "dependencies_met", lambda *_: True)


def abort_leaves_tasks_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """An abort ends the run and its steps but leaves their tasks running (ORCH-0324)."""

    def keep_running(self: Any, task_ids: list[str], why: str) -> None:
        return None

    monkeypatch.setattr(orchestrator.runtime.scheduler.Scheduler, "cancel_tasks", keep_running)


def templates_not_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps run their prompt with the references left as written (ORCH-0311)."""

    def render(self: Template, inputs: dict[str, Any], outputs: dict[str, str]) -> str:
        return "".join(
            part
            if isinstance(part, str)
            else f"{{{{ inputs.{part.name} }}}}"
            if isinstance(part, InputRef)
            else f"{{{{ steps.{part.step_id}.output }}}}"
            for part in self.parts
        )

    monkeypatch.setattr(Template, "render", render)


def cycles_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A definition whose dependencies form a cycle is registered (ORCH-0305)."""
    monkeypatch.setattr(orchestrator.runs.definition, "_check_acyclic", lambda *_: None)


def _rewrite_event_data(
    monkeypatch: pytest.MonkeyPatch, name: str, rewrite: Callable[[dict[str, Any]], None]
) -> None:
    """Rewrite the data of every ``name`` event as the run commits it."""
    event_row = orchestrator.runtime.scheduler.event_row

    def rewritten(
        run: Any, seq: int, event: Any, data: dict[str, Any]
    ) -> tuple[str, int, str, str]:
        if event == name:
            data = dict(data)
            rewrite(data)
        return event_row(run, seq, event, data)

    monkeypatch.setattr(orchestrator.runtime.scheduler, "event_row", rewritten)


def step_succeeded_with_an_extra_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """``step.succeeded`` also carries the step's token count (ORCH-0351)."""
    _rewrite_event_data(monkeypatch, "step.succeeded", lambda data: data.update(tokens_out=4))


def run_started_without_its_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run.started`` leaves out the run's seed (ORCH-0351)."""
    _rewrite_event_data(monkeypatch, "run.started", lambda data: data.pop("seed"))


def step_attempt_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """``step.started`` names its attempt as a string, ``"1"`` (ORCH-0351)."""
    _rewrite_event_data(
        monkeypatch, "step.started", lambda data: data.update(attempt=str(data["attempt"]))
    )


def checkpoints_never_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step with a before checkpoint starts as if it had been approved (ORCH-0361)."""
    monkeypatch.setattr(orchestrator.runtime.checkpoints, "approved_before", lambda *_: True)


def decisions_taken_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint already decided takes another decision (ORCH-0370)."""
    original = orchestrator.runtime.checkpoints.check_decision

    def check_decision(row: CheckpointRow, *args: Any) -> dict[str, Any] | None:
        return original(CheckpointRow(**{**vars(row), "state": "pending"}), *args)

    monkeypatch.setattr(orchestrator.runtime.checkpoints, "check_decision", check_decision)


def decisions_not_audited(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit log leaves out the decisions on checkpoints (ORCH-0381)."""
    original = orchestrator.runtime.scheduler.Scheduler.commit

    def commit(self: Scheduler, run: Any, change: Change, also: Any = None) -> None:
        change.audit = [e for e in change.audit if e[1] != "checkpoint.decided"]
        original(self, run, change, also)

    monkeypatch.setattr(orchestrator.runtime.scheduler.Scheduler, "commit", commit)


def failures_not_skippable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A held failure can be retried or aborted, never skipped (ORCH-0374)."""
    monkeypatch.setattr(orchestrator.runtime.scheduler, "FAILURE_DECISIONS", ("retry", "abort"))


MUTANTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str, str]] = {
    "a step started before its dependency succeeded": (
        steps_ignore_dependencies,
        "steps_wait_for_their_dependencies",
        "ORCH-0326",
    ),
    "an abort that leaves a step's task running": (
        abort_leaves_tasks_running,
        "abort_cancels",
        "ORCH-0324",
    ),
    "a template not substituted": (
        templates_not_rendered,
        "renders_its_prompt",
        "ORCH-0311",
    ),
    "a cycle accepted": (cycles_accepted, "broken_definition", "ORCH-0305"),
    "step.succeeded data with a field the table does not list": (
        step_succeeded_with_an_extra_field,
        "run_stream_reports_every_step",
        "ORCH-0351",
    ),
    "run.started data without its seed": (
        run_started_without_its_seed,
        "run_stream_reports_every_step",
        "ORCH-0351",
    ),
    "a step attempt sent as text": (
        step_attempt_as_text,
        "run_stream_reports_every_step",
        "ORCH-0351",
    ),
}
"""name -> (the mutation, the ``-k`` of the check that must catch it, the requirement)."""


CHECKPOINT_MUTANTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str, str]] = {
    "a checkpoint that does not block": (
        checkpoints_never_block,
        "before_checkpoint_holds",
        "ORCH-0361",
    ),
    "a checkpoint decided twice": (
        decisions_taken_twice,
        "after_checkpoint_holds",
        "ORCH-0370",
    ),
    "a held failure that cannot be skipped": (
        failures_not_skippable,
        "held_failure",
        "ORCH-0374",
    ),
    "an audit log missing a decision": (
        decisions_not_audited,
        "audit_log_names_who",
        "ORCH-0381",
    ),
}
"""The checkpoint and audit mutants (``test_contract_checkpoints``), shaped as :data:`MUTANTS`."""


def children_left_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that ends leaves its child runs running (ORCH-0492)."""
    monkeypatch.setattr(orchestrator.runtime.children.ChildRuns, "_abort_children", lambda *_: None)


def running_children_count_as_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step with child runs takes a running child for a completed one, so it succeeds
    before all its children completed (ORCH-0490)."""
    original = orchestrator.runtime.children.ChildRuns._state

    def state(self: ChildRuns, run_id: str) -> RunState:
        found = original(self, run_id)
        return "completed" if found == "running" else found

    monkeypatch.setattr(orchestrator.runtime.children.ChildRuns, "_state", state)


def fan_out_ignores_max_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan-out creates every child at once, whatever its ``max_parallel`` (ORCH-0487)."""
    original = orchestrator.runtime.children.next_move

    def next_move(items: int, states: dict[int, RunState], *rest: Any) -> FanOutState:
        return original(items, states, 256, *rest[1:])

    monkeypatch.setattr(orchestrator.runtime.children, "next_move", next_move)


def descendant_pools_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run is created though a step of a child definition names an unknown pool; the
    step fails only when its child run starts (ORCH-0495)."""
    original = orchestrator.runtime.runs.unknown_pool

    def own_steps_only(parsed: Any, lookup: Any, pools: Any) -> str | None:
        return original(parsed, lambda *_: None, pools)

    monkeypatch.setattr(orchestrator.runtime.runs, "unknown_pool", own_steps_only)


SUBORCH_MUTANTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str, str]] = {
    "an abort that leaves a child run running": (
        children_left_running,
        "aborts_every_descendant",
        "ORCH-0492",
    ),
    "a parent step that succeeds before all its children completed": (
        running_children_count_as_completed,
        "gathers_them_in_order",
        "ORCH-0490",
    ),
    "a fan-out over its max_parallel": (
        fan_out_ignores_max_parallel,
        "gathers_them_in_order",
        "ORCH-0487",
    ),
    "a child's unknown pool found only when the child starts": (
        descendant_pools_unchecked,
        "unknown_pool_through_its_children",
        "ORCH-0495",
    ),
}
"""The sub-orchestration mutants (``test_contract_suborch``), shaped as :data:`MUTANTS`."""

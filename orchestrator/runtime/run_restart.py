"""Runs after a restart, or after a write that failed: rebuilt from the store alone.

What a run does next follows from its rows and the states of its steps' tasks,
so a restart loses nothing, a step that succeeded never runs again, and event
ids continue (ORCH-0340..0343, ORCH-0351). A run whose abort was committed by a
process that died before it cancelled the run's tasks has them cancelled here
(ORCH-0324).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.live_runs import LiveRun, in_order
from orchestrator.runtime.run_views import stored_children
from orchestrator.store import RunRow, StepAttemptRow, TaskRow

if TYPE_CHECKING:
    from orchestrator.runtime.scheduler import Scheduler


def resume(scheduler: Scheduler) -> None:
    """Rebuild every running run from the store and go on (ORCH-0341..0343), and cancel
    the tasks of runs whose abort was committed by a process that died before it
    cancelled them (ORCH-0324)."""
    store = scheduler.context.store
    scheduler.restore_metrics()
    for row in store.live_runs():
        rebuild(scheduler, row)
    orphans = store.live_tasks_of_ended_runs()
    if orphans:
        scheduler.cancel_tasks(orphans, "run aborted")


def rebuild(scheduler: Scheduler, row: RunRow) -> None:
    """Drive the running run ``row`` again from what the store holds of it."""
    store = scheduler.context.store
    parsed = scheduler.lookup(row.definition, row.version)
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
    scheduler.adopt(run)
    ended: list[tuple[str, TaskRow]] = []
    now = scheduler.context.clock.now_ms()
    for step in in_order(run):
        if step.state != "running" or parsed.child_inputs.get(step.step_id) is not None:
            continue  # a step with child runs goes on in ChildRuns.resume
        made = attempts[step.step_id]
        task_id = made[-1].task_id if made else None
        task = store.get_task(task_id) if task_id is not None else None
        if task is not None and task.state in ("queued", "running"):
            scheduler.follow(task.task_id, row.run_id, step.step_id)
        elif task is not None and step.retry_at_ms is None:
            ended.append((step.step_id, task))
        else:  # waiting for a retry, or crashed before its admission
            scheduler.retry_at(run, step.step_id, (step.retry_at_ms or now) - now)
    for step_id, task in ended:
        scheduler.apply_outcome(run, step_id, task)
    scheduler.advance(run)
    scheduler.children.resume(run)

"""A running run in memory, and one transition of it.

:class:`LiveRun` holds a run's rows as stored and the channel its event readers
follow; :class:`Change` is what one transition writes and the events that report
it. Neither writes anything: :meth:`Scheduler.commit
<orchestrator.runtime.scheduler.Scheduler.commit>` makes a change durable, then
applies it to the live run, so memory never runs ahead of the store.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.runs import ParsedDefinition
from orchestrator.runtime import checkpoints
from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import CheckpointRow, ChildRow, RunRow, StepAttemptRow, StepRow
from orchestrator.vocabulary import RUN_TERMINAL_STATES, AuditAction, RunEvent


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


def in_order(run: LiveRun) -> list[StepRow]:
    return sorted(run.steps.values(), key=lambda s: s.position)


def event_row(
    run: LiveRun, seq: int, event: RunEvent, data: dict[str, Any]
) -> tuple[str, int, str, str]:
    payload = json.dumps(data, separators=(", ", ": "), ensure_ascii=False)
    return (run.run_id, seq, event, payload)

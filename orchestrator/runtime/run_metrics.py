"""Run metrics (ORCH-0460..0464), counted from the run events as they are committed.

A commit makes each run event durable exactly once (ORCH-0340), so counting there
counts each end once. A restart replays no event: the counters start again from zero,
as every Prometheus counter of a new process does, while the pending checkpoints gauge
starts from the store's pending checkpoints (:meth:`RunMetrics.restore`), since paused
runs survive a restart (ORCH-0372, ORCH-0463).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator.metrics import Metrics
from orchestrator.store import CheckpointRow
from orchestrator.vocabulary import CHECKPOINT_WHENS

__all__ = ["RunMetrics", "StartDelay"]

RUN_ENDS = {"run.completed": "completed", "run.failed": "failed", "run.aborted": "aborted"}
STEP_ENDS = {"step.succeeded": "succeeded", "step.failed": "failed", "step.skipped": "skipped"}

StartDelay = Callable[[str], tuple[str, float]]
"""``step_id -> (pool, seconds since the step became ready)``."""


class RunMetrics:
    """The run metrics of one server, fed with each committed batch of run events."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def restore(self, pending: Mapping[str, int]) -> None:
        """Start the pending checkpoints gauge from the store's count by ``when`` (ORCH-0463)."""
        for when in CHECKPOINT_WHENS:
            self._metrics.checkpoints_pending.labels(when).set(pending.get(when, 0))

    def record(
        self,
        events: Iterable[tuple[str, dict[str, Any]]],
        start_delay: StartDelay,
        checkpoints: Mapping[str, CheckpointRow],
    ) -> None:
        """Count ``events``, just committed; ``checkpoints`` holds the run's checkpoints as
        that commit left them (those a ``checkpoint.*`` event names)."""
        metrics = self._metrics
        for event, data in events:
            if event == "run.started":
                metrics.runs_started.inc()
            elif event in RUN_ENDS:
                metrics.child(metrics.runs_finished, RUN_ENDS[event]).inc()
            elif event in STEP_ENDS:
                metrics.child(metrics.run_steps_finished, STEP_ENDS[event]).inc()
            elif event == "step.started" and data["attempt"] == 1:
                pool, seconds = start_delay(data["step_id"])
                metrics.child(metrics.run_step_start_delay, pool).observe(seconds)
            elif event == "checkpoint.requested":
                metrics.child(metrics.checkpoints_pending, data["when"]).inc()
            elif event == "checkpoint.resolved":
                self._resolved(checkpoints[data["checkpoint_id"]])

    def _resolved(self, row: CheckpointRow) -> None:
        """One checkpoint less pending; a decided one observes its wait (ORCH-0464)."""
        metrics = self._metrics
        metrics.child(metrics.checkpoints_pending, row.when).dec()
        if row.state == "decided" and row.decision is not None and row.decided_ms is not None:
            seconds = max(0, row.decided_ms - row.requested_ms) / 1000
            metrics.child(metrics.checkpoint_wait, row.decision).observe(seconds)

"""Run metrics (ORCH-0460..0462), counted from the run events as they are committed.

A commit makes each run event durable exactly once (ORCH-0340), so counting there
counts each end once. A restart replays no event: the counters start again from zero,
as every Prometheus counter of a new process does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.metrics import Metrics

__all__ = ["RunMetrics", "StartDelay"]

RUN_ENDS = {"run.completed": "completed", "run.failed": "failed", "run.aborted": "aborted"}
STEP_ENDS = {"step.succeeded": "succeeded", "step.failed": "failed", "step.skipped": "skipped"}

StartDelay = Callable[[str], tuple[str, float]]
"""``step_id -> (pool, seconds since the step became ready)``."""


class RunMetrics:
    """The run metrics of one server, fed with each committed batch of run events."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, events: Iterable[tuple[str, dict[str, Any]]], start_delay: StartDelay) -> None:
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

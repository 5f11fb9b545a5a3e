"""orchestratord with a broken restart recovery, run as a serve command (spec sections 10, 12).

``python mutants.py NAME --port {port} --config {config} --db {state_dir}/orchq.db``
is ``orchq serve`` with one mutation applied to its recovery: each breaks one
requirement of section 10 and nothing else, so the restart checks that run
through ``--orch-serve-cmd`` must fail naming that requirement. A mutant is a
process the harness starts, like any other implementation: the checks cannot
reach into it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import task_error
from orchestrator.queue.admission import PoolQueue
from orchestrator.runtime import recovery
from orchestrator.runtime.channel import TaskChannel
from orchestrator.runtime.tasks import LiveTask
from orchestrator.runtime.webhooks import Webhooks
from orchestrator.vocabulary import ErrorKind


def queued_tasks_lost() -> None:
    """Recovery does not put queued tasks back in their queue: they never run (ORCH-0140)."""

    def restore(self: PoolQueue, task_id: str, priority: Any) -> None:
        return None

    PoolQueue.restore = restore  # type: ignore[method-assign]


def running_strict_task_failed() -> None:
    """A task running at the crash ends WORKER_RESET even when it is strict with attempts
    left, instead of being retried (ORCH-0141)."""
    original = recovery.task_error_after

    def task_error_after(lt: LiveTask, pool: Any, failure: Any) -> dict[str, Any] | None:
        terminal = original(lt, pool, failure)
        if terminal is None and lt.strict:
            return task_error(ErrorKind.WORKER_RESET, failure.message)
        return terminal

    recovery.task_error_after = task_error_after


def event_ids_reused() -> None:
    """A recovered task's stream numbers its events from 1 again (ORCH-0144)."""
    original = LiveTask.resumed

    def resumed(row: Any, events: Any) -> LiveTask:
        lt = original(row, events)
        lt._channel = TaskChannel()
        return lt

    LiveTask.resumed = staticmethod(resumed)  # type: ignore[method-assign,assignment]


MUTANTS: dict[str, tuple[Callable[[], None], str]] = {
    "queued tasks lost on restart": (queued_tasks_lost, "ORCH-0140"),
    "a running strict task failed instead of retried": (running_strict_task_failed, "ORCH-0141"),
    "event ids reused after a restart": (event_ids_reused, "ORCH-0144"),
}
"""name -> (the mutation, the requirement it breaks)."""


def runs_not_resumed() -> None:
    """Recovery leaves running runs as they were: they never go on (ORCH-0341)."""
    from orchestrator.runtime.runs import Runs

    def resume(self: Runs) -> None:
        return None

    Runs.resume = resume  # type: ignore[method-assign]


RUN_MUTANTS: dict[str, tuple[Callable[[], None], str]] = {
    "a run lost after a restart": (runs_not_resumed, "ORCH-0341"),
}
"""The runs restart mutants (``test_contract_runs_restart``): name -> (mutation, requirement)."""


def pending_deliveries_dropped() -> None:
    """Webhook deliveries still pending when the server stopped are dropped at start
    (ORCH-0416)."""
    original = Webhooks.start

    def start(self: Webhooks) -> None:
        connection = self._context.store.connection
        connection.execute("DELETE FROM webhook_deliveries WHERE state = 'pending'")
        original(self)

    Webhooks.start = start  # type: ignore[method-assign]


WEBHOOK_MUTANTS: dict[str, tuple[Callable[[], None], str]] = {
    "a pending webhook delivery lost across a restart": (pending_deliveries_dropped, "ORCH-0416"),
}
"""The webhooks restart mutants (``test_contract_webhooks``): name -> (mutation, requirement)."""


def paused_runs_not_resumed() -> None:
    """Recovery rebuilds running runs only: a run awaiting approval is never live again, and
    its checkpoints cannot be decided (ORCH-0372)."""
    from orchestrator.store import RunRow, Store

    original = Store.live_runs

    def live_runs(self: Store) -> list[RunRow]:
        return [row for row in original(self) if row.state == "running"]

    Store.live_runs = live_runs  # type: ignore[method-assign]


def pending_checkpoints_gauge_not_restored() -> None:
    """The pending checkpoints gauge starts from zero at a restart, whatever the store holds
    (ORCH-0463)."""
    from orchestrator.runtime.run_metrics import RunMetrics

    def restore(self: RunMetrics, pending: Mapping[str, int]) -> None:
        return None

    RunMetrics.restore = restore  # type: ignore[method-assign]


CHECKPOINT_RESTART_MUTANTS: dict[str, tuple[Callable[[], None], str]] = {
    "a paused run lost after a restart": (paused_runs_not_resumed, "ORCH-0372"),
    "the pending checkpoints gauge lost at a restart": (
        pending_checkpoints_gauge_not_restored,
        "ORCH-0463",
    ),
}
"""The checkpoint restart mutants (``test_contract_checkpoints_restart``), as :data:`MUTANTS`."""


def child_runs_not_resumed() -> None:
    """Recovery rebuilds top-level runs only: a child run running at the crash never goes
    on, and the parent step waiting on it never ends (ORCH-0494)."""
    from orchestrator.store import RunRow, Store

    original = Store.live_runs

    def live_runs(self: Store) -> list[RunRow]:
        return [row for row in original(self) if self.parent_of(row.run_id) is None]

    Store.live_runs = live_runs  # type: ignore[method-assign]


SUBORCH_RESTART_MUTANTS: dict[str, tuple[Callable[[], None], str]] = {
    "child runs lost after a restart": (child_runs_not_resumed, "ORCH-0494"),
}
"""The sub-orchestration restart mutants (``test_contract_suborch_restart``), as :data:`MUTANTS`."""

ALL = {
    **MUTANTS,
    **RUN_MUTANTS,
    **WEBHOOK_MUTANTS,
    **CHECKPOINT_RESTART_MUTANTS,
    **SUBORCH_RESTART_MUTANTS,
}
SLUGS = {name.replace(" ", "-"): name for name in ALL}


def serve_command(name: str) -> str:
    """The ``--orch-serve-cmd`` of the mutant ``name``."""
    slug = name.replace(" ", "-")
    return (
        f"{sys.executable} {__file__} {slug} --port {{port}} --config {{config}} "
        "--db {state_dir}/orchq.db"
    )


def main(argv: list[str]) -> None:
    ALL[SLUGS[argv[0]]][0]()
    from harness.cli import main as orchq

    orchq(["serve", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])

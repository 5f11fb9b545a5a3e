"""A Hypothesis state machine over the runs of any target, on the wire (spec section 12.3).

Each rule registers a random acyclic graph of steps (each step may depend on
any earlier one) and starts a run of it with a random ``max_parallel``, or
aborts a run that may still be running. Teardown waits for every run to end
and judges each one from what any client sees, the run and its steps' tasks:

- no step's task was admitted before every dependency's task had ended (ORCH-0326);
- no more than ``max_parallel`` steps' tasks were alive at once (ORCH-0327);
- a completed run has every step succeeded (ORCH-0329); an aborted one has
  every step ended, each running step ``failed`` with ``CANCELLED`` and its task
  cancelled, each other one ``skipped`` or finished before (ORCH-0324, ORCH-0325).

Times are the tasks' millisecond stamps; equal stamps count in the target's
favour, so the machine never blames a target for what the clock cannot tell.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, rule

from harness.checks import expect
from harness.wire import Wire, parse_rfc3339
from harness.wire.runs import definition, register, start_run, wait_run

__all__ = ["RunsMachine", "dags"]

MAX_STEPS = 6


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    """Each step's dependencies: indices of earlier steps, so the graph is acyclic."""
    count = draw(st.integers(1, MAX_STEPS))
    return [
        sorted(draw(st.sets(st.integers(0, index - 1), max_size=3))) if index else []
        for index in range(count)
    ]


def _ms(value: Any) -> float:
    return parse_rfc3339(value, "ORCH-0005", "a task's timestamp").timestamp() * 1000


class RunsMachine(RuleBasedStateMachine):
    """Needs :attr:`wire` set on the class (``run_state_machine_as_test`` builds instances)."""

    wire: Wire
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, int] = {}
        """run id -> its max_parallel."""
        self.aborted: set[str] = set()
        self.session = str(self.wire.new_session()["session_id"])
        self.names = itertools.count()

    @rule(target=runs, graph=dags(), max_parallel=st.integers(1, 3), tokens=st.integers(1, 8))
    def start(self, graph: list[list[int]], max_parallel: int, tokens: int) -> str:
        name = f"dag-{uuid.uuid4().hex[:10]}-{next(self.names)}"
        steps = [
            {
                "id": f"s{index}",
                "prompt": f"step {index} " + " ".join(f"{{{{ steps.s{d}.output }}}}" for d in deps),
                "depends_on": [f"s{d}" for d in deps],
                "max_tokens": tokens,
            }
            for index, deps in enumerate(graph)
        ]
        register(self.wire, definition(name, steps))
        run_id = str(start_run(self.wire, name, self.session, max_parallel=max_parallel)["run_id"])
        self.started[run_id] = max_parallel
        return run_id

    @rule(run_id=consumes(runs))
    def abort(self, run_id: str) -> None:
        response = self.wire.http.delete(f"/v1/runs/{run_id}")
        expect(
            response.status_code in (200, 409),
            f"ORCH-0324: DELETE of a run answers 200 (running) or 409 (ended); got "
            f"{response.status_code}: {response.text[:200]}",
        )
        if response.status_code == 200:
            self.aborted.add(run_id)

    def teardown(self) -> None:
        for run_id, max_parallel in self.started.items():
            self._judge(wait_run(self.wire, run_id), max_parallel)

    def _judge(self, run: dict[str, Any], max_parallel: int) -> None:
        run_id = run["run_id"]
        steps = {s["step_id"]: s for s in run["steps"]}
        tasks = {
            step_id: self.wire.task(str(s["task_id"]))
            for step_id, s in steps.items()
            if s["task_id"] is not None
        }
        spans = {
            step_id: (_ms(t["created_at"]), _ms(t["finished_at"])) for step_id, t in tasks.items()
        }
        for step_id, s in steps.items():
            for dependency in s["depends_on"]:
                if step_id in spans:
                    expect(
                        dependency in spans and spans[step_id][0] >= spans[dependency][1],
                        f"ORCH-0326: run {run_id}: step {step_id}'s task was admitted before "
                        f"its dependency {dependency} ended: {spans}",
                    )
        edges = sorted(
            [(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()]
        )
        alive = peak = 0
        for _, delta in edges:
            alive += delta
            peak = max(peak, alive)
        expect(
            peak <= max_parallel,
            f"ORCH-0327: run {run_id}: {peak} steps ran at once, max_parallel {max_parallel}",
        )
        states = {step_id: s["state"] for step_id, s in steps.items()}
        if run["state"] == "completed":
            expect(
                set(states.values()) == {"succeeded"},
                f"ORCH-0329: run {run_id} completed with steps {states}",
            )
        if run_id in self.aborted:
            expect(run["state"] == "aborted", f"ORCH-0324: run {run_id} was aborted: {run}")
        if run["state"] == "aborted":
            for step_id, s in steps.items():
                expect(
                    s["state"] in ("succeeded", "failed", "skipped"),
                    f"ORCH-0325: aborted run {run_id} left step {step_id} {s['state']}",
                )
                if s["state"] == "failed":
                    task = self.wire.wait_terminal(str(s["task_id"]))
                    expect(
                        s["error"]["kind"] == "CANCELLED" and task["state"] == "cancelled",
                        f"ORCH-0324: abort reaches every running step of run {run_id}: step "
                        f"{step_id} is {s['error']}, its task {task['state']}",
                    )

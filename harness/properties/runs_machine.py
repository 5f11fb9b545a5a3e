"""A Hypothesis state machine over the runs of any target, on the wire (sections 12.3, 12.6, 12.7).

Each rule registers a random acyclic graph of steps (each step may depend on
any earlier one, and may carry a ``before`` or ``after`` checkpoint) and starts
a run of it with a random ``max_parallel``, decides a pending checkpoint of a
run (``continue``, ``retry`` or ``abort``, then checks a second decision is
refused), or aborts a run that may still be running. Teardown decides
``continue`` until every run ended and judges each one from what any client
sees, the run, its steps' tasks, its checkpoints and its audit log:

- no step's task was admitted before every dependency's task had ended (ORCH-0326);
- no more than ``max_parallel`` steps' tasks were alive at once (ORCH-0327);
- a completed run has every step succeeded (ORCH-0329); an aborted one has
  every step ended, each running step ``failed`` with ``CANCELLED`` and its task
  cancelled, each other one ``skipped`` or finished before (ORCH-0324, ORCH-0325);
- a step with a ``before`` checkpoint got its task only once it was decided
  (ORCH-0361), and no step's first task was admitted while a checkpoint of its
  run was pending (ORCH-0363); a step with an ``after`` checkpoint succeeded only
  through a ``continue``, with that checkpoint's output (ORCH-0362, ORCH-0367);
- the audit log holds, in order and numbered from 1, the run's creation, every
  decision the machine made and its abort (ORCH-0380, ORCH-0381).

Times are the tasks' millisecond stamps; equal stamps count in the target's
favour, so the machine never blames a target for what the clock cannot tell.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, rule

from harness.checks import expect
from harness.wire import Wire, parse_rfc3339
from harness.wire.checkpoints import approvals, audit, decide
from harness.wire.runs import (
    definition,
    get_run,
    read_run_events,
    register,
    start_run,
    wait_run,
)

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
        self.deleted: set[str] = set()
        """Runs the machine aborted with ``DELETE``."""
        self.decided: dict[str, list[tuple[str, str, str]]] = {}
        """run id -> ``(decided_by, checkpoint_id, decision)`` of each decision, in order."""
        self.declared: dict[str, dict[str, str]] = {}
        """run id -> the ``when`` of each step's checkpoint."""
        self.session = str(self.wire.new_session()["session_id"])
        self.names = itertools.count()

    @rule(
        target=runs,
        graph=dags(),
        max_parallel=st.integers(1, 3),
        tokens=st.integers(1, 8),
        checkpoints=st.lists(
            st.sampled_from([None, None, "before", "after"]),
            min_size=MAX_STEPS,
            max_size=MAX_STEPS,
        ),
    )
    def start(
        self,
        graph: list[list[int]],
        max_parallel: int,
        tokens: int,
        checkpoints: list[str | None],
    ) -> str:
        name = f"dag-{uuid.uuid4().hex[:10]}-{next(self.names)}"
        steps: list[dict[str, Any]] = []
        for index, deps in enumerate(graph):
            step: dict[str, Any] = {
                "id": f"s{index}",
                "prompt": f"step {index} " + " ".join(f"{{{{ steps.s{d}.output }}}}" for d in deps),
                "depends_on": [f"s{d}" for d in deps],
                "max_tokens": tokens,
            }
            if checkpoints[index] is not None:
                step["checkpoint"] = {"when": checkpoints[index]}
            steps.append(step)
        register(self.wire, definition(name, steps))
        run_id = str(start_run(self.wire, name, self.session, max_parallel=max_parallel)["run_id"])
        self.started[run_id] = max_parallel
        self.decided[run_id] = []
        self.declared[run_id] = {
            step["id"]: step["checkpoint"]["when"] for step in steps if "checkpoint" in step
        }
        return run_id

    @rule(run_id=runs, decision=st.sampled_from(["continue", "continue", "retry", "abort"]))
    def decide(self, run_id: str, decision: str) -> None:
        """Decide the run's oldest pending checkpoint, if it has one; a second decision on it
        must be refused."""
        pending = approvals(self.wire, run_id=run_id, state="pending")["approvals"]
        if not pending:
            return
        checkpoint = pending[0]
        if decision not in checkpoint["decisions"]:
            decision = "continue"
        who = f"m{len(self.decided[run_id])}"
        response = decide(self.wire, run_id, checkpoint["checkpoint_id"], decision, who)
        if response.status_code == 409:  # the run ended meanwhile: cancelled
            return
        expect(
            response.status_code == 200,
            f"ORCH-0366: deciding a pending checkpoint answers 200; got {response.status_code}: "
            f"{response.text[:200]}",
        )
        self.decided[run_id].append((who, checkpoint["checkpoint_id"], decision))
        if decision == "abort":
            self.aborted.add(run_id)
        again = decide(self.wire, run_id, checkpoint["checkpoint_id"], "continue", "m-again")
        expect(
            again.status_code == 409,
            f"ORCH-0370: a second decision on {checkpoint['checkpoint_id']} must be 409; got "
            f"{again.status_code}: {again.text[:200]}",
        )

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
            self.deleted.add(run_id)

    def teardown(self) -> None:
        for run_id, max_parallel in self.started.items():
            self._judge(self._approve_to_the_end(run_id), max_parallel)

    def _approve_to_the_end(self, run_id: str) -> dict[str, Any]:
        """Decide ``continue`` on each checkpoint the run reaches, until it ended."""
        for _ in range(4 * MAX_STEPS):
            pending = approvals(self.wire, run_id=run_id, state="pending")["approvals"]
            for checkpoint in pending:
                who = f"m{len(self.decided[run_id])}"
                answer = decide(self.wire, run_id, checkpoint["checkpoint_id"], "continue", who)
                if answer.status_code == 200:
                    self.decided[run_id].append((who, checkpoint["checkpoint_id"], "continue"))
            run = get_run(self.wire, run_id)
            deadline = time.monotonic() + 20
            while run["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.01)
                run = get_run(self.wire, run_id)
            if run["state"] != "awaiting_approval" and run["state"] != "running":
                return run
        return wait_run(
            self.wire, run_id, "ORCH-0363: a run whose checkpoints are all decided must end"
        )

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
        self._judge_checkpoints(run)
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

    def _judge_checkpoints(self, run: dict[str, Any]) -> None:
        run_id = run["run_id"]
        steps = {s["step_id"]: s for s in run["steps"]}
        listed = approvals(self.wire, run_id=run_id, limit=100)["approvals"]
        self._judge_pauses(run_id)
        for checkpoint in listed:
            step = steps[checkpoint["step_id"]]
            decided = _ms(checkpoint["decided_at"]) if checkpoint["decided_at"] else None
            if checkpoint["when"] == "before" and step["attempts"]:
                first = self.wire.task(str(step["attempts"][0]["task_id"]))
                expect(
                    decided is not None
                    and checkpoint["decision"] == "continue"
                    and _ms(first["created_at"]) >= decided,
                    f"ORCH-0361: run {run_id}: step {step['step_id']}'s task was admitted "
                    f"before its checkpoint was decided: {checkpoint}, task {first['created_at']}",
                )
        for step_id, when in self.declared[run_id].items():
            mine = [c for c in listed if c["step_id"] == step_id and c["when"] == when]
            ran = (
                bool(steps[step_id]["attempts"])
                if when == "before"
                else (steps[step_id]["state"] == "succeeded")
            )
            expect(
                not ran or any(c["decision"] == "continue" for c in mine),
                f"ORCH-0361: run {run_id}: step {step_id} has a {when} checkpoint, yet "
                f"{'ran' if when == 'before' else 'succeeded'} without one decided continue: "
                f"{mine}",
                "ORCH-0361" if when == "before" else "ORCH-0362",
            )
        for step_id, step in steps.items():
            afters = [c for c in listed if c["step_id"] == step_id and c["when"] == "after"]
            if step["state"] == "succeeded" and afters:
                last = afters[-1]
                expect(
                    last["decision"] == "continue" and last["output"] == step["output"],
                    f"ORCH-0367: run {run_id}: step {step_id} succeeded without its after "
                    f"checkpoint decided continue with its output: {last}, step {step}",
                )
        entries = audit(self.wire, run_id)
        if run_id in self.deleted:
            expect(
                [e["action"] for e in entries[-1:]] == ["run.aborted"],
                f"ORCH-0381: run {run_id} was deleted: its audit log must end with run.aborted; "
                f"got {entries}",
            )
        expect(
            [e["seq"] for e in entries] == list(range(1, len(entries) + 1)),
            f"ORCH-0380: run {run_id}: audit seq must count from 1 in order; got {entries}",
        )
        seen = [
            (e["actor"], e["checkpoint_id"], e["detail"].get("decision"))
            for e in entries
            if e["action"] == "checkpoint.decided"
        ]
        expected = [(who, c, d) for who, c, d in self.decided[run_id]]
        expect(
            entries[:1] and entries[0]["action"] == "run.created" and seen == expected,
            f"ORCH-0381: run {run_id}: the audit log must hold the creation and every decision "
            f"in order: decided {expected}, logged {entries}",
        )

    def _judge_pauses(self, run_id: str) -> None:
        """No step starts between a ``before`` checkpoint's request and its resolution: the
        run's events are one order, no clock involved (ORCH-0363)."""
        pending: set[str] = set()
        for event in read_run_events(self.wire, run_id).events:
            data = event.data if isinstance(event.data, dict) else {}
            checkpoint = str(data.get("checkpoint_id", ""))
            if event.event == "checkpoint.requested" and data.get("when") == "before":
                pending.add(checkpoint)
            elif event.event == "checkpoint.resolved":
                pending.discard(checkpoint)
            elif event.event == "step.started" and data.get("attempt") == 1:
                expect(
                    not pending,
                    f"ORCH-0363: run {run_id}: step {data.get('step_id')} started while "
                    f"checkpoint(s) {sorted(pending)} were pending",
                )

"""A Hypothesis state machine over the runs of any target, on the wire (sections 12.3, 12.6, 12.7).

Each rule registers a random acyclic graph of steps (each step may depend on
any earlier one; a step has a prompt and may carry a ``before`` or ``after``
checkpoint, or runs one child run, or fans out one child run per item of a list
input with a random ``for_each.max_parallel``; a child's one step may wait at a
``before`` checkpoint) and starts a run of it with a random ``max_parallel``,
decides a pending checkpoint of a run or of one of its children (``continue``,
``retry`` or ``abort``, then checks a second decision is refused), or aborts a
run that may still be running. Teardown decides ``continue`` until every run
ended and judges each one from what any client sees, the run, its steps' tasks,
its child runs, its checkpoints and its audit log:

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
  decision the machine made and its abort (ORCH-0380, ORCH-0381);
- a step with child runs succeeded only once every child had completed, with their
  outputs (ORCH-0490); no more than ``for_each.max_parallel`` children of a step were
  alive at once (ORCH-0487); no child ended otherwise than aborted after its parent
  run had ended (ORCH-0492).

Times are the tasks' millisecond stamps; equal stamps count in the target's
favour, so the machine never blames a target for what the clock cannot tell.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterable
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
MAX_ITEMS = 4
TERMINAL = ("completed", "failed", "aborted")
KINDS = ("prompt", "prompt", "prompt", "child", "fan_out")
"""What a step does: a prompt (most often), one child run, or one child run per item."""


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


def _peak(spans: Iterable[tuple[float, float]]) -> int:
    """The most spans open at once; one ending when another starts does not overlap it."""
    edges = sorted(edge for start, end in spans for edge in ((start, 1), (end, -1)))
    alive = peak = 0
    for _, delta in edges:
        alive += delta
        peak = max(peak, alive)
    return peak


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
        self.fan_outs: dict[str, dict[str, int]] = {}
        """run id -> each fan-out step's ``for_each.max_parallel``."""
        self.child_counts: dict[str, dict[str, int]] = {}
        """run id -> how many child runs each step with ``run`` makes."""
        self.session = str(self.wire.new_session()["session_id"])
        self.names = itertools.count()
        self.leaves = {gated: self._register_leaf(gated) for gated in (False, True)}
        """Child definitions: one step writing about its ``topic``, waiting first or not."""

    def _register_leaf(self, gated: bool) -> str:
        name = f"leaf-{uuid.uuid4().hex[:10]}"
        write: dict[str, Any] = {"id": "write", "prompt": "on {{ inputs.topic }}", "max_tokens": 4}
        if gated:
            write["checkpoint"] = {"when": "before"}
        register(self.wire, definition(name, [write], inputs={"topic": {"type": "string"}}))
        return name

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
        kinds=st.lists(st.sampled_from(KINDS), min_size=MAX_STEPS, max_size=MAX_STEPS),
        gated=st.lists(st.booleans(), min_size=MAX_STEPS, max_size=MAX_STEPS),
        fan_parallel=st.integers(1, 2),
        items=st.lists(st.sampled_from(["owls", "larks", "wrens"]), max_size=MAX_ITEMS),
    )
    def start(
        self,
        graph: list[list[int]],
        max_parallel: int,
        tokens: int,
        checkpoints: list[str | None],
        kinds: list[str],
        gated: list[bool],
        fan_parallel: int,
        items: list[str],
    ) -> str:
        name = f"dag-{uuid.uuid4().hex[:10]}-{next(self.names)}"
        steps: list[dict[str, Any]] = []
        for index, deps in enumerate(graph):
            step: dict[str, Any] = {"id": f"s{index}", "depends_on": [f"s{d}" for d in deps]}
            child = {"definition": self.leaves[gated[index]], "version": "1"}
            if kinds[index] == "child":
                step["run"] = {**child, "inputs": {"topic": f"step {index}"}}
            elif kinds[index] == "fan_out":
                step["run"] = {**child, "inputs": {}}
                step["for_each"] = {
                    "items": "{{ inputs.items }}",
                    "as": "topic",
                    "max_parallel": fan_parallel,
                }
            else:
                step["prompt"] = f"step {index} " + " ".join(
                    f"{{{{ steps.s{d}.output }}}}" for d in deps
                )
                step["max_tokens"] = tokens
                if checkpoints[index] is not None:
                    step["checkpoint"] = {"when": checkpoints[index]}
            steps.append(step)
        fanned = any("for_each" in step for step in steps)
        more: dict[str, Any] = {"inputs": {"items": {"type": "list"}}} if fanned else {}
        register(self.wire, definition(name, steps, **more))
        run_id = str(
            start_run(
                self.wire,
                name,
                self.session,
                max_parallel=max_parallel,
                inputs={"items": items} if fanned else {},
            )["run_id"]
        )
        self.started[run_id] = max_parallel
        self.decided[run_id] = []
        self.declared[run_id] = {
            step["id"]: step["checkpoint"]["when"] for step in steps if "checkpoint" in step
        }
        self.fan_outs[run_id] = {
            step["id"]: step["for_each"]["max_parallel"] for step in steps if "for_each" in step
        }
        self.child_counts[run_id] = {
            step["id"]: len(items) if "for_each" in step else 1 for step in steps if "run" in step
        }
        return run_id

    def _pending(self, run_id: str) -> list[dict[str, Any]]:
        """The pending checkpoints of the run and of its child runs, the run's first."""
        found: list[dict[str, Any]] = []
        for owner in [run_id, *self._children(get_run(self.wire, run_id))]:
            found += approvals(self.wire, run_id=owner, state="pending")["approvals"]
        return found

    @staticmethod
    def _children(run: dict[str, Any]) -> list[str]:
        return [str(child) for step in run["steps"] for child in step["children"]]

    def _decide(self, checkpoint: dict[str, Any], decision: str) -> int:
        """Decide ``checkpoint`` (of a run or a child), logged under its own run's decisions;
        the answer's status."""
        owner = str(checkpoint["run_id"])
        made = self.decided.setdefault(owner, [])
        who = f"m{len(made)}"
        response = decide(self.wire, owner, checkpoint["checkpoint_id"], decision, who)
        if response.status_code == 200:
            made.append((who, checkpoint["checkpoint_id"], decision))
        return response.status_code

    @rule(run_id=runs, decision=st.sampled_from(["continue", "continue", "retry", "abort"]))
    def decide(self, run_id: str, decision: str) -> None:
        """Decide the oldest pending checkpoint of the run, else of one of its children, if
        there is one; a second decision on it must be refused."""
        pending = self._pending(run_id)
        if not pending:
            return
        checkpoint = pending[0]
        if decision not in checkpoint["decisions"]:
            decision = "continue"
        status = self._decide(checkpoint, decision)
        if status == 409:  # the run ended meanwhile: cancelled
            return
        expect(
            status == 200,
            f"ORCH-0366: deciding a pending checkpoint answers 200; got {status}",
        )
        if decision == "abort" and checkpoint["run_id"] == run_id:
            self.aborted.add(run_id)
        again = decide(self.wire, checkpoint["run_id"], checkpoint["checkpoint_id"], "continue")
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
        """Decide ``continue`` on each checkpoint the run and its children reach, until it
        ended."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = self._pending(run_id)
            for checkpoint in pending:
                self._decide(checkpoint, "continue")
            run = get_run(self.wire, run_id)
            if run["state"] in TERMINAL:
                return run
            if not pending:
                time.sleep(0.01)
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
        # Each started step's span: its task's, or for a step with child runs its own.
        begun = {
            **{
                step_id: (_ms(s["started_at"]), _ms(s["finished_at"]))
                for step_id, s in steps.items()
                if s["task_id"] is None and s["started_at"] and s["finished_at"]
            },
            **spans,
        }
        for step_id, s in steps.items():
            for dependency in s["depends_on"]:
                if step_id in begun:
                    expect(
                        dependency in begun and begun[step_id][0] >= begun[dependency][1],
                        f"ORCH-0326: run {run_id}: step {step_id} started before its "
                        f"dependency {dependency} ended: {begun}",
                    )
        peak = _peak(spans.values())
        expect(
            peak <= max_parallel,
            f"ORCH-0327: run {run_id}: {peak} steps ran at once, max_parallel {max_parallel}",
        )
        self._judge_checkpoints(run)
        self._judge_children(run)
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
                if s["state"] == "failed" and s["task_id"] is None:
                    expect(
                        s["error"]["kind"] == "CANCELLED",
                        f"ORCH-0324: abort reaches every running step of run {run_id}: step "
                        f"{step_id} with child runs is {s['error']}",
                    )
                elif s["state"] == "failed":
                    task = self.wire.wait_terminal(str(s["task_id"]))
                    expect(
                        s["error"]["kind"] == "CANCELLED" and task["state"] == "cancelled",
                        f"ORCH-0324: abort reaches every running step of run {run_id}: step "
                        f"{step_id} is {s['error']}, its task {task['state']}",
                    )

    def _judge_children(self, run: dict[str, Any]) -> None:
        """Each step's child runs: gathered only once all completed (ORCH-0490), a fan-out
        within its ``max_parallel`` (ORCH-0487), none outliving the run (ORCH-0492)."""
        run_id = run["run_id"]
        ended = _ms(run["finished_at"])
        for step in run["steps"]:
            step_id = step["step_id"]
            children = [get_run(self.wire, str(child)) for child in step["children"]]
            for child in children:
                expect(
                    child["state"] == "aborted"
                    or (child["state"] in TERMINAL and _ms(child["finished_at"]) <= ended),
                    f"ORCH-0492: run {run_id} ended {run['state']} at {run['finished_at']}; its "
                    f"child run {child['run_id']} of step {step_id} must have ended before or "
                    f"been aborted, yet is {child['state']} (finished {child['finished_at']})",
                )
            limit = self.fan_outs[run_id].get(step_id)
            if limit is not None:
                peak = _peak(
                    (_ms(c["created_at"]), _ms(c["finished_at"]))
                    for c in children
                    if c["finished_at"]
                )
                expect(
                    peak <= limit,
                    f"ORCH-0487: run {run_id}: {peak} child runs of step {step_id} were alive "
                    f"at once, for_each.max_parallel {limit}",
                )
            if step["state"] != "succeeded" or step_id not in self.child_counts[run_id]:
                continue
            outputs = [c["steps"][-1]["output"] for c in children]
            finished = _ms(step["finished_at"])
            expect(
                len(children) == self.child_counts[run_id][step_id]
                and all(
                    c["state"] == "completed" and _ms(c["finished_at"]) <= finished
                    for c in children
                ),
                f"ORCH-0490: run {run_id}: step {step_id} succeeded at {step['finished_at']} "
                f"before all its {self.child_counts[run_id][step_id]} child runs completed: "
                f"{[(c['run_id'], c['state'], c['finished_at']) for c in children]}",
            )
            gathered = (
                json.dumps(outputs, separators=(",", ":"), ensure_ascii=False)
                if step_id in self.fan_outs[run_id]
                else outputs[0]
            )
            expect(
                step["output"] == gathered,
                f"ORCH-0490: run {run_id}: step {step_id}'s output must gather its children's "
                f"outputs: {step['output']!r}, children's {outputs}",
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

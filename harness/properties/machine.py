"""A Hypothesis state machine over any admission-queue implementation.

:func:`queue_machine` builds a ``RuleBasedStateMachine`` class around a
:data:`QueueFactory`, so the conformance suite runs it over orchestratord's
``PoolQueue`` and the self-tests over deliberately broken queues. Each example
draws a pool (capacity, ``reject``/``drop_lru``, ``batch_share_every``), then
admits, dispatches, completes, cancels and restarts in any order, checking the
queue against :class:`~harness.properties.model.QueueModel` and the persisted
states against the machine's own bookkeeping. Every assertion message starts
with the ORCH ID it checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from harness.properties.ledger import TERMINAL, Ledger
from harness.properties.model import PRIORITIES, Policy, Priority, QueueModel
from harness.properties.profile import suite_settings

__all__ = [
    "QueueFactory",
    "QueueImpl",
    "machine_settings",
    "queue_machine",
]


class QueueImpl(Protocol):
    """What the machine drives: orchestratord's ``PoolQueue`` interface.

    ``admit`` returns an object with ``position`` and ``evicted`` or raises an
    exception with a ``policy`` attribute (``QueueFull``) when it refuses.
    """

    def admit(self, task_id: str, priority: Priority) -> Any: ...
    def pop(self) -> str | None: ...
    def remove(self, task_id: str) -> bool: ...
    def restore(self, task_id: str, priority: Priority) -> None: ...
    def lane(self, priority: Priority) -> list[str]: ...
    def __len__(self) -> int: ...


QueueFactory = Callable[[int, Policy, int], QueueImpl]
"""``factory(capacity, overflow_policy, batch_share_every)`` -> a new empty queue."""


def machine_settings(
    max_examples: int | None = None,
    steps: int | None = None,
    *,
    shrink: bool = True,
    parent: settings | None = None,
) -> settings:
    """The machine's settings on ``parent`` (default: the ``orchq`` profile, see
    :mod:`harness.properties.profile`), with ``max_examples``/``steps`` if given.

    ``shrink=False`` reports the first failing example as found: self-tests that only
    need to see a mutant caught skip the (costly) search for the smallest example.
    """
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    bounds: dict[str, Any] = {}
    if max_examples is not None:
        bounds["max_examples"] = max_examples
    if steps is not None:
        bounds["stateful_step_count"] = steps
    return settings(parent or suite_settings(), phases=phases, **bounds)


def queue_machine(factory: QueueFactory) -> type[RuleBasedStateMachine]:
    """A state machine class checking the queue ``factory`` builds against the spec model."""

    class QueueProperties(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = QueueModel(1, "reject", 2)
            self.queue: QueueImpl | None = None
            self.ledger = Ledger()
            self.states: dict[str, str] = {}
            """Every admitted task's current state, as the runtime moved it."""
            self.terminal_moves: dict[str, int] = {}
            self.counter = 0

        # ------------------------------------------------------------ setup

        @initialize(
            capacity=st.integers(1, 6),
            policy=st.sampled_from(["reject", "drop_lru"]),
            share=st.integers(2, 4),
        )
        def pool(self, capacity: int, policy: Policy, share: int) -> None:
            self.model = QueueModel(capacity, policy, share)
            self.queue = factory(capacity, policy, share)

        @property
        def q(self) -> QueueImpl:
            assert self.queue is not None
            return self.queue

        def _move(self, task_id: str, state: str) -> None:
            before = self.states[task_id]
            assert before not in TERMINAL, (
                f"ORCH-0060: task {task_id} already ended {before!r} and was moved to {state!r}: "
                "every task reaches exactly one terminal state and never leaves it"
            )
            self.states[task_id] = state
            self.ledger.moved(task_id, state)
            if state in TERMINAL:
                self.terminal_moves[task_id] = self.terminal_moves.get(task_id, 0) + 1

        def _where(self) -> str:
            return (
                f"(capacity {self.model.capacity}, {self.model.policy}, "
                f"batch_share_every {self.model.share}; model lanes {self.model.lanes}, "
                f"queue lanes {[self.q.lane(p) for p in PRIORITIES]})"
            )

        # ------------------------------------------------------------ rules

        @rule(priority=st.sampled_from(PRIORITIES))
        def admit(self, priority: Priority) -> None:
            self.counter += 1
            task_id = f"{priority[0]}{self.counter}"
            expected = self.model.expect_admission(priority)
            before = self._where()
            refused_as: str | None = None
            try:
                admission = self.q.admit(task_id, priority)
            except Exception as exc:
                if not hasattr(exc, "policy"):
                    raise
                refused_as = str(exc.policy)
            if refused_as is not None:
                assert not expected.admitted, (
                    f"{expected.req}: {priority} task refused although the spec admits it "
                    f"(evicting {expected.victim}) {before}"
                )
                assert refused_as == self.model.policy, f"{expected.req}: refused as {refused_as}"
                assert task_id not in self.q.lane(priority), (
                    f"ORCH-0050: refused task {task_id} is queued anyway {self._where()}"
                )
                return
            if not expected.admitted:
                kind = "ORCH-0099" if priority == "batch" and admission.evicted else expected.req
                raise AssertionError(
                    f"{kind}: {priority} task admitted (evicting {admission.evicted}) although "
                    f"the spec refuses it with {expected.refusal} {before}"
                )
            if admission.evicted != expected.victim:
                victim_lane = self.model.lane_of(admission.evicted or "")
                req = (
                    "ORCH-0099"
                    if priority == "batch" and victim_lane == "interactive"
                    else ("ORCH-0096" if self.model.policy == "drop_lru" else "ORCH-0095")
                )
                raise AssertionError(
                    f"{req}: admitting {priority} {task_id} evicted {admission.evicted}, the spec "
                    f"evicts {expected.victim} (the oldest task of the lowest priority not above "
                    f"the newcomer's) {before}"
                )
            position = len(self.model.lanes[priority]) - (
                1 if expected.victim in self.model.lanes[priority] else 0
            )
            assert admission.position == position, (
                f"ORCH-0043: {task_id} got queue_position {admission.position}, "
                f"{position} tasks are ahead in its lane {before}"
            )
            self.model.admit(task_id, priority, expected.victim)
            self.states[task_id] = "queued"
            self.ledger.admitted(task_id, priority)
            if expected.victim is not None:
                self._move(expected.victim, "dropped")  # ORCH-0097

        @rule(priorities=st.lists(st.sampled_from(PRIORITIES), min_size=2, max_size=6))
        def admit_burst(self, priorities: list[Priority]) -> None:
            for priority in priorities:
                self.admit(priority)

        @rule()
        def dispatch(self) -> None:
            lane = self.model.expect_dispatch()
            before = self._where()
            got = self.q.pop()
            if lane is None:
                assert got is None, f"ORCH-0060: empty queue dispatched {got!r} {before}"
                return
            assert got is not None, f"ORCH-0093: queue returned nothing while tasks wait {before}"
            state = self.states.get(got)
            assert state == "queued", (
                f"ORCH-0060: dispatched {got}, which is {state or 'not an admitted task'}, "
                f"not queued {before}"
            )
            head = self.model.lanes[lane][0]
            if got != head:
                got_lane = self.model.lane_of(got)
                if got_lane == lane:
                    req, rule_text = "ORCH-0088", f"FIFO within the {lane} lane: {head} is older"
                elif lane == "batch":
                    req, rule_text = (
                        "ORCH-0090",
                        (
                            f"fairness budget: after {self.model.share - 1} interactive dispatches "
                            f"while batch waited, the next must take batch ({head})"
                        ),
                    )
                else:
                    req, rule_text = "ORCH-0089", f"interactive first: {head} should go before"
                raise AssertionError(f"{req}: dispatched {got}; {rule_text} {before}")
            self.model.dispatched(lane)
            window = self.model.fairness_window()
            assert window is None or "batch" in window, (
                f"ORCH-0090: {self.model.share} dispatches in a row took interactive while batch "
                f"waited {before}"
            )
            self._move(got, "running")

        @rule(n=st.integers(2, 6))
        def dispatch_many(self, n: int) -> None:
            for _ in range(n):
                self.dispatch()

        @precondition(lambda self: "running" in self.states.values())
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            running = sorted(t for t, s in self.states.items() if s == "running")
            task_id = data.draw(st.sampled_from(running))
            self._move(task_id, "completed")

        @precondition(lambda self: any(s in ("queued", "running") for s in self.states.values()))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            live = sorted(t for t, s in self.states.items() if s in ("queued", "running"))
            task_id = data.draw(st.sampled_from(live))
            was_queued = self.states[task_id] == "queued"
            before = self._where()
            removed = self.q.remove(task_id)
            assert removed == was_queued, (
                f"ORCH-0067: cancelling {'queued' if was_queued else 'running'} {task_id}: "
                f"queue.remove answered {removed} {before}"
            )
            still = [p for p in PRIORITIES if task_id in self.q.lane(p)]
            assert not still, (
                f"ORCH-0067: cancelled {task_id} is still in the {still[0]} lane: a cancelled "
                f"queued task must leave the queue at once {self._where()}"
            )
            self.model.remove(task_id)
            self._move(task_id, "cancelled")

        @precondition(lambda self: any(s in TERMINAL for s in self.states.values()))
        @rule(data=st.data())
        def cancel_terminal(self, data: st.DataObject) -> None:
            ended = sorted(t for t, s in self.states.items() if s in TERMINAL)
            task_id = data.draw(st.sampled_from(ended))
            assert self.q.remove(task_id) is False, (
                f"ORCH-0060: a {self.states[task_id]} task {task_id} was still in the queue"
            )

        @rule()
        def restart(self) -> None:
            queued = self.ledger.restart()
            self.queue = factory(self.model.capacity, self.model.policy, self.model.share)
            for task_id, priority in queued:
                self.q.restore(task_id, priority)  # type: ignore[arg-type]
            self.model.restarted()
            for priority in PRIORITIES:
                got, want = self.q.lane(priority), self.model.lanes[priority]
                assert got == want, (
                    f"ORCH-0140: after a restart the {priority} lane is {got}; the queued tasks "
                    f"in admission order are {want}"
                )
            persisted = self.ledger.states(sorted(self.states))
            lost = {t: (s, persisted[t]) for t, s in self.states.items() if persisted[t] != s}
            assert not lost, f"ORCH-0137: tasks lost or changed across a restart: {lost}"

        # ------------------------------------------------------------ invariants

        @invariant()
        def queue_matches_the_model(self) -> None:
            if self.queue is None:
                return
            assert len(self.q) <= self.model.capacity, (
                f"ORCH-0094: {len(self.q)} tasks queued, capacity {self.model.capacity}"
            )
            for priority in PRIORITIES:
                got, want = self.q.lane(priority), self.model.lanes[priority]
                if got == want:
                    continue
                if sorted(got) == sorted(want):
                    raise AssertionError(
                        f"ORCH-0088: the {priority} lane is {got}, admission order is {want}"
                    )
                ghosts = sorted(set(got) - set(want))
                missing = sorted(set(want) - set(got))
                raise AssertionError(
                    f"ORCH-0060: the {priority} lane holds {ghosts} that are not queued and "
                    f"lacks {missing} that are (tasks lost or kept after their terminal state; "
                    f"ORCH-0067 when a cancelled task stays) {self._where()}"
                )

        @invariant()
        def exactly_one_terminal_state(self) -> None:
            twice = {t: n for t, n in self.terminal_moves.items() if n != 1}
            assert not twice, f"ORCH-0060: tasks with more than one terminal state: {twice}"
            in_queue = [t for p in PRIORITIES for t in self.q.lane(p)] if self.queue else []
            assert len(in_queue) == len(set(in_queue)), f"ORCH-0060: queued twice: {in_queue}"
            stray = {t: self.states.get(t) for t in in_queue if self.states.get(t) != "queued"}
            assert not stray, f"ORCH-0060: tasks in the queue that are not queued: {stray}"

        def teardown(self) -> None:
            self.ledger.close()

    return QueueProperties

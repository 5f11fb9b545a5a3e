"""PoolQueue: unit tests and a stateful property test against a reference model.

The reference model is written from the spec (specs/orchestrator-spec.md, "Queue"), not from the
implementation: two FIFO lists, a fairness rule stated as "after N-1
interactive dispatches in a row while batch work waited, the next dispatch is
batch", and the drop_lru victim rule "oldest task of the lowest priority not
above the newcomer's".

Spec: ORCH-0043, ORCH-0088, ORCH-0089, ORCH-0090, ORCH-0094, ORCH-0096, ORCH-0098,
ORCH-0099.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from orchestrator.queue.admission import PoolQueue, QueueFull
from orchestrator.vocabulary import Priority


def drain(queue: PoolQueue) -> list[str]:
    out: list[str] = []
    while (task_id := queue.pop()) is not None:
        out.append(task_id)
    return out


# ---------------------------------------------------------------- plain unit tests


def test_empty_queue_pops_none() -> None:
    queue = PoolQueue(4, "reject", 4)
    assert queue.pop() is None
    assert len(queue) == 0
    assert queue.depth("interactive") == queue.depth("batch") == 0


@pytest.mark.parametrize("share", [-1, 0, 1])
def test_batch_share_every_below_two_is_refused(share: int) -> None:
    with pytest.raises(ValueError, match="batch_share_every"):
        PoolQueue(4, "reject", share)


@pytest.mark.req("ORCH-0088")
def test_fifo_within_each_lane() -> None:
    queue = PoolQueue(100, "reject", 1000)
    for i in range(5):
        queue.admit(f"i{i}", "interactive")
    assert drain(queue) == [f"i{i}" for i in range(5)]
    for i in range(5):
        queue.admit(f"b{i}", "batch")
    assert drain(queue) == [f"b{i}" for i in range(5)]


@pytest.mark.req("ORCH-0089")
def test_interactive_goes_first_when_budget_not_spent() -> None:
    queue = PoolQueue(100, "reject", 4)
    queue.admit("b0", "batch")
    queue.admit("i0", "interactive")
    queue.admit("i1", "interactive")
    assert drain(queue) == ["i0", "i1", "b0"]


@pytest.mark.req("ORCH-0089", "ORCH-0090")
def test_fairness_budget_exact_pattern() -> None:
    queue = PoolQueue(100, "reject", 4)
    for i in range(8):
        queue.admit(f"i{i}", "interactive")
    for i in range(3):
        queue.admit(f"b{i}", "batch")
    assert drain(queue) == [
        "i0", "i1", "i2", "b0",
        "i3", "i4", "i5", "b1",
        "i6", "i7", "b2",
    ]  # fmt: skip


@pytest.mark.parametrize("share", [2, 3, 5])
@pytest.mark.req("ORCH-0090")
def test_at_least_one_batch_in_every_window_while_both_wait(share: int) -> None:
    queue = PoolQueue(1000, "reject", share)
    for i in range(40):
        queue.admit(f"i{i}", "interactive")
    for i in range(10):
        queue.admit(f"b{i}", "batch")
    order: list[str] = []
    while queue.depth("interactive") and queue.depth("batch"):
        popped = queue.pop()
        assert popped is not None
        order.append(popped)
    for start in range(len(order) - share + 1):
        window = order[start : start + share]
        assert any(t.startswith("b") for t in window), window
    # and no more batch than the budget requires: exactly 1 in every `share`
    assert sum(t.startswith("b") for t in order) == len(order) // share


@pytest.mark.req("ORCH-0089")
def test_streak_resets_when_batch_lane_is_empty() -> None:
    queue = PoolQueue(100, "reject", 3)
    for i in range(4):
        queue.admit(f"i{i}", "interactive")
    # interactive pops with no batch waiting do not spend the budget
    assert queue.pop() == "i0"
    assert queue.pop() == "i1"
    queue.admit("b0", "batch")
    assert [queue.pop(), queue.pop(), queue.pop()] == ["i2", "i3", "b0"]


@pytest.mark.req("ORCH-0043")
def test_positions_count_tasks_ahead_in_the_same_lane() -> None:
    queue = PoolQueue(100, "reject", 4)
    assert queue.admit("i0", "interactive").position == 0
    assert queue.admit("b0", "batch").position == 0
    assert queue.admit("i1", "interactive").position == 1
    assert queue.admit("b1", "batch").position == 1
    assert queue.admit("i2", "interactive").position == 2
    assert queue.pop() == "i0"
    assert queue.admit("i3", "interactive").position == 2
    assert queue.remove("b0")
    assert queue.admit("b2", "batch").position == 1


@pytest.mark.req("ORCH-0094")
def test_reject_policy_refuses_at_capacity_and_keeps_the_queue() -> None:
    queue = PoolQueue(2, "reject", 4)
    queue.admit("b0", "batch")
    queue.admit("i0", "interactive")
    priorities: tuple[Priority, ...] = ("interactive", "batch")
    for priority in priorities:
        with pytest.raises(QueueFull) as info:
            queue.admit("new", priority)
        assert info.value.policy == "reject"
    assert "new" not in queue
    assert queue.lane("interactive") == ["i0"]
    assert queue.lane("batch") == ["b0"]
    assert queue.pop() == "i0"
    assert queue.admit("i1", "interactive").evicted is None


@pytest.mark.req("ORCH-0096")
def test_drop_lru_interactive_newcomer_evicts_oldest_batch_first() -> None:
    queue = PoolQueue(3, "drop_lru", 4)
    queue.admit("i0", "interactive")
    queue.admit("b0", "batch")
    queue.admit("b1", "batch")
    admission = queue.admit("i1", "interactive")
    assert admission.evicted == "b0"
    assert admission.position == 1
    assert queue.lane("batch") == ["b1"]
    assert queue.lane("interactive") == ["i0", "i1"]
    assert len(queue) == 3


@pytest.mark.req("ORCH-0096")
def test_drop_lru_interactive_newcomer_evicts_oldest_interactive_when_no_batch() -> None:
    queue = PoolQueue(2, "drop_lru", 4)
    queue.admit("i0", "interactive")
    queue.admit("i1", "interactive")
    admission = queue.admit("i2", "interactive")
    assert admission.evicted == "i0"
    assert admission.position == 1
    assert queue.lane("interactive") == ["i1", "i2"]


@pytest.mark.req("ORCH-0096", "ORCH-0099")
def test_drop_lru_batch_newcomer_evicts_oldest_batch() -> None:
    queue = PoolQueue(3, "drop_lru", 4)
    queue.admit("b0", "batch")
    queue.admit("i0", "interactive")
    queue.admit("b1", "batch")
    admission = queue.admit("b2", "batch")
    assert admission.evicted == "b0"
    assert admission.position == 1
    assert queue.lane("batch") == ["b1", "b2"]
    assert queue.lane("interactive") == ["i0"]


@pytest.mark.req("ORCH-0098", "ORCH-0099")
def test_drop_lru_batch_newcomer_into_all_interactive_is_refused() -> None:
    queue = PoolQueue(2, "drop_lru", 4)
    queue.admit("i0", "interactive")
    queue.admit("i1", "interactive")
    with pytest.raises(QueueFull) as info:
        queue.admit("b0", "batch")
    assert info.value.policy == "drop_lru"
    assert queue.lane("interactive") == ["i0", "i1"]
    assert queue.lane("batch") == []


def test_remove_and_contains() -> None:
    queue = PoolQueue(4, "reject", 4)
    queue.admit("i0", "interactive")
    queue.admit("b0", "batch")
    assert "i0" in queue and "b0" in queue
    assert queue.remove("b0") is True
    assert queue.remove("b0") is False
    assert queue.remove("nope") is False
    assert "b0" not in queue
    assert drain(queue) == ["i0"]


def test_restore_ignores_capacity_and_goes_to_the_back() -> None:
    queue = PoolQueue(1, "reject", 4)
    queue.admit("i0", "interactive")
    queue.restore("i1", "interactive")
    queue.restore("b0", "batch")
    assert len(queue) == 3
    assert queue.lane("interactive") == ["i0", "i1"]
    with pytest.raises(QueueFull):
        queue.admit("i2", "interactive")
    assert drain(queue) == ["i0", "i1", "b0"]


# ---------------------------------------------------------------- stateful model


class QueueMachine(RuleBasedStateMachine):
    """PoolQueue against two lists and a spec-level fairness rule."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: PoolQueue | None = None
        self.lanes: dict[str, list[str]] = {"interactive": [], "batch": []}
        self.capacity = 0
        self.policy = "reject"
        self.share = 2
        self.counter = 0
        self.streak = 0
        """Interactive dispatches in a row made while batch work waited."""
        self.contended: list[str] = []
        """Lanes of the most recent pops that happened while both lanes were non-empty,
        cut at every pop where they were not."""

    @initialize(
        capacity=st.integers(1, 8),
        policy=st.sampled_from(["reject", "drop_lru"]),
        share=st.integers(2, 5),
    )
    def setup(self, capacity: int, policy: str, share: int) -> None:
        self.capacity, self.policy, self.share = capacity, policy, share
        self.queue = PoolQueue(capacity, policy, share)  # type: ignore[arg-type]

    @property
    def q(self) -> PoolQueue:
        assert self.queue is not None
        return self.queue

    def _size(self) -> int:
        return len(self.lanes["interactive"]) + len(self.lanes["batch"])

    def _model_victim(self, priority: str) -> str | None:
        # lowest priority first, but never above the newcomer's
        allowed = ["batch"] if priority == "batch" else ["batch", "interactive"]
        for lane in allowed:
            if self.lanes[lane]:
                return self.lanes[lane][0]
        return None

    @rule(priority=st.sampled_from(["interactive", "batch"]))
    def admit(self, priority: Priority) -> None:
        self.counter += 1
        task_id = f"{priority[0]}{self.counter}"
        full = self._size() >= self.capacity
        expected_victim: str | None = None
        if full:
            expected_victim = None if self.policy == "reject" else self._model_victim(priority)
            if expected_victim is None:
                with pytest.raises(QueueFull) as info:
                    self.q.admit(task_id, priority)
                assert info.value.policy == self.policy
                assert task_id not in self.q
                return
        admission = self.q.admit(task_id, priority)
        assert admission.evicted == expected_victim
        if expected_victim is not None:
            victim_lane = "interactive" if expected_victim[0] == "i" else "batch"
            self.lanes[victim_lane].remove(expected_victim)
            # the victim is never of a higher priority than the newcomer
            assert not (priority == "batch" and victim_lane == "interactive")
        assert admission.position == len(self.lanes[priority])
        self.lanes[priority].append(task_id)

    @rule(priorities=st.lists(st.sampled_from(["interactive", "batch"]), min_size=2, max_size=8))
    def admit_burst(self, priorities: list[Priority]) -> None:
        for priority in priorities:
            self.admit(priority)

    @rule(n=st.integers(2, 6))
    def pop_many(self, n: int) -> None:
        for _ in range(n):
            self.pop()

    @rule()
    def pop(self) -> None:
        interactive, batch = self.lanes["interactive"], self.lanes["batch"]
        both = bool(interactive) and bool(batch)
        if not interactive and not batch:
            expected = None
        elif not interactive:
            expected = "batch"
        elif not batch:
            expected = "interactive"
        else:
            expected = "batch" if self.streak >= self.share - 1 else "interactive"
        got = self.q.pop()
        if expected is None:
            assert got is None
            return
        assert got == self.lanes[expected][0], (got, self.lanes)  # FIFO head of that lane
        self.lanes[expected].pop(0)
        if expected == "batch":
            self.streak = 0
        elif batch:
            self.streak += 1
        else:
            self.streak = 0
        # spec-level fairness, independent of the streak bookkeeping above
        if both:
            self.contended.append(expected)
            window = self.contended[-self.share :]
            if len(window) == self.share:
                assert "batch" in window, window
        else:
            self.contended.clear()

    @precondition(lambda self: self._size() > 0)
    @rule(data=st.data())
    def remove_queued(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.lanes["interactive"] + self.lanes["batch"]))
        assert self.q.remove(task_id) is True
        for lane in self.lanes.values():
            if task_id in lane:
                lane.remove(task_id)

    @invariant()
    def matches_model(self) -> None:
        if self.queue is None:
            return
        assert len(self.q) <= self.capacity
        assert len(self.q) == self._size()
        priorities: tuple[Priority, ...] = ("interactive", "batch")
        for priority in priorities:
            assert self.q.lane(priority) == self.lanes[priority]
            assert self.q.depth(priority) == len(self.lanes[priority])


QueueMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueMachine = QueueMachine.TestCase

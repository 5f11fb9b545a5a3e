"""The admission queue of one pool: two FIFO lanes, a fairness budget, overflow.

Pure and synchronous on purpose: the runtime owns waiting and concurrency, and
this class owns ordering, so its properties (FIFO per priority, the batch share,
the reject/drop_lru boundary) can be proven without an event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from orchestrator.vocabulary import PRIORITIES, OverflowPolicy, Priority


class QueueFull(Exception):
    """Admission refused: the queue is full and the policy evicts nothing for this task."""

    def __init__(self, policy: str) -> None:
        super().__init__(f"queue full (overflow policy {policy})")
        self.policy = policy


@dataclass(frozen=True)
class Admission:
    position: int
    """0-based number of tasks ahead in the same priority lane."""
    evicted: str | None
    """The task id dropped to make room (``drop_lru`` only)."""


class PoolQueue:
    """Queued task ids of one pool.

    Dispatch order: FIFO within a lane; ``interactive`` first, except that while
    both lanes wait, every ``batch_share_every``-th dispatch goes to ``batch``,
    so batch work is never starved (at least 1 in N dispatches).
    """

    def __init__(
        self,
        capacity: int,
        overflow_policy: OverflowPolicy,
        batch_share_every: int,
    ) -> None:
        if batch_share_every < 2:
            raise ValueError("batch_share_every must be at least 2")
        self.capacity = capacity
        self.overflow_policy = overflow_policy
        self.batch_share_every = batch_share_every
        self._lanes: dict[Priority, OrderedDict[str, None]] = {p: OrderedDict() for p in PRIORITIES}
        self._interactive_streak = 0
        """Interactive dispatches in a row while batch work was waiting."""

    def __len__(self) -> int:
        return len(self._lanes["interactive"]) + len(self._lanes["batch"])

    def __contains__(self, task_id: object) -> bool:
        return any(task_id in lane for lane in self._lanes.values())

    def depth(self, priority: Priority) -> int:
        return len(self._lanes[priority])

    def lane(self, priority: Priority) -> list[str]:
        return list(self._lanes[priority])

    def admit(self, task_id: str, priority: Priority) -> Admission:
        """Queue a new task, applying the overflow policy if the queue is full."""
        evicted = None
        if len(self) >= self.capacity:
            if self.overflow_policy == "reject":
                raise QueueFull("reject")
            evicted = self._evict_for(priority)
            if evicted is None:
                raise QueueFull("drop_lru")
        lane = self._lanes[priority]
        lane[task_id] = None
        return Admission(position=len(lane) - 1, evicted=evicted)

    def restore(self, task_id: str, priority: Priority) -> None:
        """Re-queue a recovered task at the back of its lane, ignoring capacity."""
        self._lanes[priority][task_id] = None

    @property
    def interactive_streak(self) -> int:
        """Interactive dispatches in a row while batch work waited (resets on a batch dispatch)."""
        return self._interactive_streak

    def restore_streak(self, streak: int) -> None:
        """Resume the fairness window of a previous process (recovery only).

        Values above N-1 are clamped: ``pop`` only asks whether N-1 is reached.
        """
        if streak < 0:
            raise ValueError("a fairness streak cannot be negative")
        self._interactive_streak = min(streak, self.batch_share_every - 1)

    def _evict_for(self, priority: Priority) -> str | None:
        # The oldest task of the lowest priority not above the newcomer's.
        allowed = PRIORITIES[PRIORITIES.index(priority) :]
        for candidate in reversed(allowed):
            lane = self._lanes[candidate]
            if lane:
                task_id, _ = lane.popitem(last=False)
                return task_id
        return None

    def remove(self, task_id: str) -> bool:
        for lane in self._lanes.values():
            if task_id in lane:
                del lane[task_id]
                return True
        return False

    def pop(self) -> str | None:
        """The next task to dispatch, or None if the queue is empty."""
        interactive, batch = self._lanes["interactive"], self._lanes["batch"]
        if not interactive and not batch:
            return None
        if batch and (not interactive or self._interactive_streak >= self.batch_share_every - 1):
            self._interactive_streak = 0
            return batch.popitem(last=False)[0]
        if batch:
            self._interactive_streak += 1
        else:
            self._interactive_streak = 0
        return interactive.popitem(last=False)[0]

"""The admission queue as the spec states it (section 6), as a reference model.

Written from the spec's sentences, not from ``orchestrator.queue``:

- two FIFO lanes per pool (ORCH-0088);
- ``interactive`` first while both lanes wait (ORCH-0089), except that after
  N-1 interactive dispatches in a row made while batch work waited, the next
  dispatch takes ``batch`` (ORCH-0090, N = ``batch_share_every``);
- a full ``reject`` pool refuses (ORCH-0095); a full ``drop_lru`` pool evicts
  the oldest task of the lowest priority not above the newcomer's (ORCH-0096,
  ORCH-0099) or refuses when there is none (ORCH-0098).

The fairness streak lives in memory, so a restart starts a fresh budget window;
the model does the same (see :meth:`QueueModel.restarted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.vocabulary import PRIORITIES, Priority
from orchestrator.vocabulary import OverflowPolicy as Policy

__all__ = ["PRIORITIES", "Expected", "Policy", "Priority", "QueueModel"]


@dataclass(frozen=True)
class Expected:
    """What the spec says an admission must do."""

    admitted: bool
    victim: str | None = None
    refusal: str | None = None
    """The 429 kind when refused: ``ADMISSION_REJECT`` or ``QUEUE_FULL_DROP_LRU``."""
    req: str = ""
    """The requirement deciding this outcome."""


@dataclass
class QueueModel:
    capacity: int
    policy: Policy
    share: int
    lanes: dict[Priority, list[str]] = field(
        default_factory=lambda: {"interactive": [], "batch": []}
    )
    streak: int = 0
    """Interactive dispatches in a row made while batch work waited."""
    contended: list[Priority] = field(default_factory=list)
    """Lanes of the consecutive dispatches made while both lanes waited (for ORCH-0090)."""

    def size(self) -> int:
        return len(self.lanes["interactive"]) + len(self.lanes["batch"])

    def lane_of(self, task_id: str) -> Priority | None:
        for priority in PRIORITIES:
            if task_id in self.lanes[priority]:
                return priority
        return None

    def expect_admission(self, priority: Priority) -> Expected:
        if self.size() < self.capacity:
            return Expected(admitted=True, req="ORCH-0094")
        if self.policy == "reject":
            return Expected(admitted=False, refusal="ADMISSION_REJECT", req="ORCH-0095")
        # the lowest priority first, never one above the newcomer's
        allowed = PRIORITIES[PRIORITIES.index(priority) :]
        for lane in reversed(allowed):
            if self.lanes[lane]:
                return Expected(admitted=True, victim=self.lanes[lane][0], req="ORCH-0096")
        return Expected(admitted=False, refusal="QUEUE_FULL_DROP_LRU", req="ORCH-0098")

    def admit(self, task_id: str, priority: Priority, victim: str | None) -> None:
        if victim is not None:
            lane = self.lane_of(victim)
            assert lane is not None
            self.lanes[lane].remove(victim)
        self.lanes[priority].append(task_id)

    def expect_dispatch(self) -> Priority | None:
        """The lane the next dispatch must take, or None when nothing waits."""
        interactive, batch = self.lanes["interactive"], self.lanes["batch"]
        if not interactive and not batch:
            return None
        if not interactive:
            return "batch"
        if not batch:
            return "interactive"
        return "batch" if self.streak >= self.share - 1 else "interactive"

    def dispatched(self, lane: Priority) -> str:
        both = bool(self.lanes["interactive"]) and bool(self.lanes["batch"])
        task_id = self.lanes[lane].pop(0)
        if lane == "batch":
            self.streak = 0
        elif self.lanes["batch"]:
            self.streak += 1  # batch work waited through this interactive dispatch
        else:
            self.streak = 0
        if both:
            self.contended.append(lane)
        else:
            self.contended.clear()
        return task_id

    def fairness_window(self) -> list[Priority] | None:
        """The last N contended dispatches, once there are N of them."""
        window = self.contended[-self.share :]
        return window if len(window) == self.share else None

    def remove(self, task_id: str) -> None:
        lane = self.lane_of(task_id)
        if lane is not None:
            self.lanes[lane].remove(task_id)

    def restarted(self) -> None:
        """A new process: same lanes (restored in admission order), a fresh budget window."""
        self.streak = 0
        self.contended.clear()

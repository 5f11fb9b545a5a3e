"""Deliberately broken admission queues for the property self-tests.

Each is orchestratord's ``PoolQueue`` with one behaviour broken the way a real
implementation might get it wrong; :data:`MUTANTS` pairs it with the ORCH ID
the property suite must name when it catches it.
"""

from __future__ import annotations

from orchestrator.queue.admission import PRIORITIES, Admission, PoolQueue, Priority


class LifoQueue(PoolQueue):
    """Dispatches the newest task of the chosen lane (a stack, not a queue)."""

    def pop(self) -> str | None:
        interactive, batch = self._lanes["interactive"], self._lanes["batch"]
        if not interactive and not batch:
            return None
        if batch and (not interactive or self._interactive_streak >= self.batch_share_every - 1):
            self._interactive_streak = 0
            return batch.popitem(last=True)[0]
        self._interactive_streak = self._interactive_streak + 1 if batch else 0
        return interactive.popitem(last=True)[0]


class StarvingQueue(PoolQueue):
    """Strict priority: batch only runs when no interactive task waits (no fairness budget)."""

    def pop(self) -> str | None:
        for priority in PRIORITIES:
            lane = self._lanes[priority]
            if lane:
                return lane.popitem(last=False)[0]
        return None


class NewestVictimQueue(PoolQueue):
    """drop_lru evicts the newest task of the victim lane instead of the oldest."""

    def _evict_for(self, priority: Priority) -> str | None:
        allowed = PRIORITIES[PRIORITIES.index(priority) :]
        for candidate in reversed(allowed):
            lane = self._lanes[candidate]
            if lane:
                return lane.popitem(last=True)[0]
        return None


class BatchEvictsInteractiveQueue(PoolQueue):
    """drop_lru lets a batch newcomer evict an interactive task when no batch task waits."""

    def _evict_for(self, priority: Priority) -> str | None:
        for candidate in ("batch", "interactive"):
            lane = self._lanes[candidate]  # type: ignore[index]
            if lane:
                return lane.popitem(last=False)[0]
        return None


class StickyCancelQueue(PoolQueue):
    """Cancelling a queued task answers True but leaves it queued."""

    def remove(self, task_id: str) -> bool:
        return task_id in self


class FrontRestoreQueue(PoolQueue):
    """Recovery puts every restored task at the front of its lane (order reversed)."""

    def restore(self, task_id: str, priority: Priority) -> None:
        super().restore(task_id, priority)
        self._lanes[priority].move_to_end(task_id, last=False)


class WrongPositionQueue(PoolQueue):
    """Reports queue positions counted from 1."""

    def admit(self, task_id: str, priority: Priority) -> Admission:
        admission = super().admit(task_id, priority)
        return Admission(position=admission.position + 1, evicted=admission.evicted)


MUTANTS: dict[str, tuple[type[PoolQueue], str]] = {
    "lifo": (LifoQueue, "ORCH-0088"),
    "starving-fairness": (StarvingQueue, "ORCH-0090"),
    "drop-lru-newest-victim": (NewestVictimQueue, "ORCH-0096"),
    "batch-evicts-interactive": (BatchEvictsInteractiveQueue, "ORCH-0099"),
    "sticky-cancel": (StickyCancelQueue, "ORCH-0067"),
    "front-restore": (FrontRestoreQueue, "ORCH-0140"),
    "position-from-one": (WrongPositionQueue, "ORCH-0043"),
}
"""name -> (queue class, the ORCH ID the property suite must name)."""

"""Admission queues: ordering, fairness and overflow of one pool."""

from orchestrator.queue.admission import PRIORITIES, Admission, PoolQueue, Priority, QueueFull
from orchestrator.queue.fairness import PastDispatch, derive_streak

__all__ = [
    "PRIORITIES",
    "Admission",
    "PastDispatch",
    "PoolQueue",
    "Priority",
    "QueueFull",
    "derive_streak",
]

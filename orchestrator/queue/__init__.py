"""Admission queues: ordering, fairness and overflow of one pool."""

from orchestrator.queue.admission import Admission, PoolQueue, QueueFull
from orchestrator.queue.fairness import PastDispatch, derive_streak

__all__ = [
    "Admission",
    "PastDispatch",
    "PoolQueue",
    "QueueFull",
    "derive_streak",
]

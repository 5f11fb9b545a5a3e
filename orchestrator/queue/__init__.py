"""Admission queues: ordering, fairness and overflow of one pool."""

from orchestrator.queue.admission import PRIORITIES, Admission, PoolQueue, Priority, QueueFull

__all__ = ["PRIORITIES", "Admission", "PoolQueue", "Priority", "QueueFull"]

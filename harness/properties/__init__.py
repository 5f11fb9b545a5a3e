"""Hypothesis properties of the admission queue (spec section 6, restart in 10.2).

:mod:`.model` is the spec's queue as a reference model, :mod:`.ledger` persists
task states in orchestratord's real SQLite store for the simulated restart, and
:mod:`.machine` builds the state machine over any queue implementation.
"""

from harness.properties.machine import QueueFactory, QueueImpl, machine_settings, queue_machine
from harness.properties.model import QueueModel

__all__ = ["QueueFactory", "QueueImpl", "QueueModel", "machine_settings", "queue_machine"]

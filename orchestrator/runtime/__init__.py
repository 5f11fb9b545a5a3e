"""The running orchestrator: pools of replicas, task execution, streams and recovery."""

from orchestrator.runtime.clock import Clock, ManualClock
from orchestrator.runtime.service import Orchestrator, StreamSource

__all__ = ["Clock", "ManualClock", "Orchestrator", "StreamSource"]

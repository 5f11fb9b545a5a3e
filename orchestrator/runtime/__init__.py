"""The running orchestrator: sessions, admission, execution, termination, views, recovery.

:class:`Orchestrator` is the face the API calls; see its module for the parts.
"""

from orchestrator.runtime.clock import Clock, ManualClock
from orchestrator.runtime.service import Orchestrator
from orchestrator.runtime.streams import StreamSource

__all__ = ["Clock", "ManualClock", "Orchestrator", "StreamSource"]

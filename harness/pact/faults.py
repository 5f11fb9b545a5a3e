"""An engine factory that makes orchestratord fail unexpectedly, through its public seam.

``INTERNAL`` is "a bug; never expected" (spec section 2.2), so no configuration
produces it. To pin its shape in the pact, the in-process server of the
``faulty`` provider-state group is built with :func:`crashing_engine_factory`:
replicas whose ID starts with :data:`CRASHING_REPLICA_PREFIX` get an engine that
breaks the engine protocol itself (``generate`` raises instead of returning a
token stream), every other replica the engine its configuration names. Nothing
of orchestratord is patched: the factory is what ``ServerThread`` and
``orch_serve(engine_factory=...)`` accept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.config import ReplicaConfig
    from orchestrator.engines.base import Engine, GenerationRequest, Token

__all__ = ["CRASHING_REPLICA_PREFIX", "CrashingEngine", "crashing_engine_factory"]

CRASHING_REPLICA_PREFIX = "crash"


class CrashingEngine:
    """Ready at once, then fails every generation with an exception outside the protocol."""

    def __init__(self, replica_id: str) -> None:
        self._replica_id = replica_id

    @property
    def name(self) -> str:
        return "crashing"

    @property
    def version(self) -> str:
        return "crashing-1"

    async def warmup(self) -> None:
        return None

    def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        raise RuntimeError(f"replica {self._replica_id}: engine bug (injected by orchq)")

    async def aclose(self) -> None:
        return None


def crashing_engine_factory(replica: ReplicaConfig) -> Engine:
    """:func:`orchestrator.engines.build_engine`, except for ``crash*`` replicas."""
    from orchestrator.engines import build_engine

    if replica.replica_id.startswith(CRASHING_REPLICA_PREFIX):
        return CrashingEngine(replica.replica_id)
    return build_engine(replica)

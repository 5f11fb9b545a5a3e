"""A mock engine that holds before a chosen token until the test opens its gate.

Timing-based tests ("the task is still running", "the stream is idle for a
while") flaked on a loaded machine: a token delay only makes a state likely.
Holding the engine on a gate makes it certain, and the test releases it once
it has observed what it wanted to observe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from orchestrator.config import ReplicaConfig
from orchestrator.engines import Engine, build_engine
from orchestrator.engines.base import GenerationRequest, Token

POLL_S = 0.005
"""How often a held engine looks at the gate (a threading.Event, set from the test thread)."""


class Gate:
    """``engine_factory=gate.factory``: every replica holds before token ``hold_before``."""

    def __init__(self, hold_before: int) -> None:
        self.hold_before = hold_before
        self.opened = threading.Event()
        self.reached = threading.Event()
        """Set once an engine has produced ``hold_before`` tokens and is holding."""

    def open(self) -> None:
        self.opened.set()

    def factory(self, replica: ReplicaConfig) -> Engine:
        return GatedEngine(build_engine(replica), self)


class GatedEngine:
    """Delegates to the configured engine, waiting on the gate before one token."""

    def __init__(self, inner: Engine, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def version(self) -> str:
        return self._inner.version

    async def warmup(self) -> None:
        await self._inner.warmup()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        async for token in self._inner.generate(request):
            if token.index == self._gate.hold_before:
                self._gate.reached.set()
                while not self._gate.opened.is_set():  # noqa: ASYNC110 (set from the test thread)
                    await asyncio.sleep(POLL_S)
            yield token

    async def aclose(self) -> None:
        await self._inner.aclose()

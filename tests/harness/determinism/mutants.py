"""Deliberately broken orchestrators for the determinism self-tests: what the replicas generate.

Each mutant wraps every replica's engine (``mutate_every_server(wrap_engine=...)``);
the rest of the server is untouched.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.engines.base import Engine, GenerationRequest, Token


class DriftedEngine:
    """The engine after an "upgrade" that kept its version: token 7 always changes.

    Deterministic (every replica agrees), so only the snapshot can notice (ORCH-0113).
    """

    def __init__(self, inner: Engine) -> None:
        self._inner = inner
        self.name = inner.name
        self.version = inner.version

    async def warmup(self) -> None:
        await self._inner.warmup()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        async for token in self._inner.generate(request):
            if token.index == 7:
                token = Token(index=7, text=" upgraded", token_id=(token.token_id + 1) % 243)
            yield token

    async def aclose(self) -> None:
        await self._inner.aclose()


class UnseededEngine(DriftedEngine):
    """Token 3 of every request is drawn without the seed: strict tasks differ run to run
    (ORCH-0113), whichever replica or concurrency."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        async for token in self._inner.generate(request):
            if token.index == 3:
                drawn = random.randrange(243)
                token = Token(index=3, text=f" r{drawn}", token_id=drawn)
            yield token


MUTANTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "engine output changed under the same version": (
        {"wrap_engine": DriftedEngine}, "snapshot", "ORCH-0113",
    ),
    "strict tokens drawn without the seed": (
        {"wrap_engine": UnseededEngine}, "byte_exact or concurrency", "ORCH-0113",
    ),
}  # fmt: skip
"""name -> (``mutate_every_server`` keywords, ``-k`` of ``test_determinism``, ORCH ID)."""

"""The engine protocol: what a replica needs from an LLM backend.

An engine turns one :class:`GenerationRequest` into an async stream of
:class:`Token`. It signals failures by raising the :class:`EngineError`
subclasses below; the runtime maps them to attempts, retries and task errors.
Decode timeouts are the runtime's job, not the engine's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    seed: int
    max_tokens: int
    temperature: float
    top_p: float
    sampler_profile_version: str
    determinism: str


@dataclass(frozen=True)
class Token:
    index: int
    text: str
    token_id: int


class EngineError(Exception):
    """Base of every failure an engine reports."""


class EngineReset(EngineError):
    """The replica died mid-generation (process crash, dropped connection)."""


class EngineRateLimited(EngineError):
    """The engine answered 429; ``retry_after_s`` is its advice (0 if it gave none)."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EngineUnavailable(EngineError):
    """The engine cannot be reached or refuses work before generating anything."""


@runtime_checkable
class Engine(Protocol):
    """One replica's backend. Implementations: ``mock``, ``openai``."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    async def warmup(self) -> None:
        """Get ready to serve; raise :class:`EngineUnavailable` if that is impossible."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        """Stream the tokens of one completion, index 0 first.

        The stream ends normally when ``max_tokens`` are produced (finish reason
        ``length``) or earlier when the engine stops by itself (``stop``).
        """
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""


def finish_reason(tokens: int, max_tokens: int) -> str:
    return "length" if tokens >= max_tokens else "stop"

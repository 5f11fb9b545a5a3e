"""The ``mock`` model: orchestratord's deterministic token function behind the engine server.

Token ``i`` of a completion is the embedded ``mock`` engine's token function
(:func:`orchestrator.engines.mock.token_at` keyed by
:func:`orchestrator.engines.mock.request_key`), shared, not copied: served over
OpenAI-compatible HTTP it gives exactly the tokens the embedded engine gives for
the same prompt, seed and sampling knobs under the default sampler profile. So
the harness knows, without asking any engine, what a strict task must stream
(:func:`expected_tokens`), and an orchestrator's determinism is judged against a
known function rather than against itself.

Generation needs no model and no thread: requests are decoded concurrently on
the server's event loop, as many as the orchestrator sends (slots, replicas).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from orchestrator.engines.base import GenerationRequest
from orchestrator.engines.mock import ENGINE_VERSION, request_key, token_at

__all__ = ["MOCK_MODEL", "SAMPLER_PROFILE", "MockModel", "expected_tokens"]

MOCK_MODEL = "mock"
"""The model name the server answers to (``model: mock`` in a replica's config)."""

SAMPLER_PROFILE = "v1"
"""An OpenAI request names no sampler profile: the mock engine samples as profile ``v1``."""

_YIELD_EVERY = 32
"""Without a token delay, let the event loop serve others this often."""


def _request(
    prompt: str, seed: int, max_tokens: int, temperature: float, top_p: float
) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        seed=seed,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        sampler_profile_version=SAMPLER_PROFILE,
        determinism="strict",
    )


def expected_tokens(
    prompt: str, seed: int, max_tokens: int, temperature: float = 1.0, top_p: float = 1.0
) -> list[tuple[str, int]]:
    """``(text, token_id)`` of each token the mock model generates for this request."""
    key = request_key(_request(prompt, seed, max_tokens, temperature, top_p))
    tokens = (token_at(key, index) for index in range(max_tokens))
    return [(token.text, token.token_id) for token in tokens]


class MockModel:
    """The deterministic mock model, decoded on the event loop."""

    @property
    def model_id(self) -> str:
        return MOCK_MODEL

    @property
    def version(self) -> str:
        return ENGINE_VERSION

    async def generate(
        self, prompt: str, seed: int, max_tokens: int, temperature: float, top_p: float
    ) -> AsyncIterator[tuple[int, str]]:
        """``(token_id, text)`` per token, index 0 first."""
        key = request_key(_request(prompt, seed, max_tokens, temperature, top_p))
        for index in range(max_tokens):
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            token = token_at(key, index)
            yield token.token_id, token.text

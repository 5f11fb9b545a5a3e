"""The mock engine: tokens are a pure function of the request, faults break that on purpose.

Spec: ORCH-0113, ORCH-0114.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.config import MockFaults
from orchestrator.engines import (
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
)
from orchestrator.engines.mock import VOCABULARY, MockEngine

BASE = GenerationRequest("prompt", 7, 16, 1.0, 1.0, "v1", "strict")


def texts(engine: MockEngine, request: GenerationRequest = BASE) -> list[str]:
    async def collect() -> list[str]:
        return [t.text async for t in engine.generate(request)]

    return asyncio.run(collect())


@settings(max_examples=50, deadline=None)
@given(prompt=st.text(min_size=1, max_size=50), seed=st.integers(0, 2**63 - 1))
@pytest.mark.req("ORCH-0113", "ORCH-0114")
def test_tokens_depend_only_on_the_request_not_the_replica(prompt: str, seed: int) -> None:
    request = replace(BASE, prompt=prompt, seed=seed)
    assert texts(MockEngine("r1"), request) == texts(MockEngine("other", token_delay_ms=0), request)


def test_every_sampling_input_changes_the_output() -> None:
    reference = texts(MockEngine("r1"))
    for change in (
        {"prompt": "other"},
        {"seed": 8},
        {"sampler_profile_version": "v2"},
        {"temperature": 0.5},
        {"top_p": 0.9},
    ):
        assert texts(MockEngine("r1"), replace(BASE, **change)) != reference, change  # type: ignore[arg-type]


def test_a_shorter_request_is_a_prefix_of_a_longer_one() -> None:
    assert texts(MockEngine("r1"), replace(BASE, max_tokens=5)) == texts(MockEngine("r1"))[:5]


def test_tokens_come_from_the_fixed_vocabulary() -> None:
    async def collect() -> list[tuple[str, int]]:
        return [(t.text, t.token_id) async for t in MockEngine("r1").generate(BASE)]

    for text, token_id in asyncio.run(collect()):
        assert VOCABULARY[token_id] == text


def test_nondeterministic_fault_breaks_reproducibility() -> None:
    engine = MockEngine("r1", faults=MockFaults(nondeterministic=True))
    assert texts(engine) != texts(engine)


def test_fail_after_tokens_resets_the_replica() -> None:
    engine = MockEngine("r1", faults=MockFaults(fail_after_tokens=3))

    async def collect() -> list[str]:
        out: list[str] = []
        with pytest.raises(EngineReset):
            async for token in engine.generate(BASE):
                out.append(token.text)
        return out

    assert len(asyncio.run(collect())) == 3


def test_rate_limit_and_unavailable_faults() -> None:
    limited = MockEngine("r1", faults=MockFaults(rate_limit=True, rate_limit_retry_after_s=2.5))
    with pytest.raises(EngineRateLimited) as caught:
        texts(limited)
    assert caught.value.retry_after_s == 2.5
    with pytest.raises(EngineUnavailable):
        asyncio.run(MockEngine("r1", faults=MockFaults(unavailable=True)).warmup())


def test_stall_never_yields_past_its_point() -> None:
    engine = MockEngine("r1", faults=MockFaults(stall_after_tokens=2))

    async def collect() -> list[str]:
        out: list[str] = []

        async def consume() -> None:
            async for token in engine.generate(BASE):
                out.append(token.text)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(consume(), 0.2)
        return out

    assert len(asyncio.run(collect())) == 2

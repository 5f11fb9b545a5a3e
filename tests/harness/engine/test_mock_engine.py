"""The mock engine server: orchestratord's token function over HTTP, its faults and its ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.engine.control import EngineControl, rule
from harness.engine.faults import FaultBook, FaultError, FaultRule, Faults
from harness.engine.mock import MockModel, expected_tokens
from harness.engine.server import EngineThread
from orchestrator.engines.base import GenerationRequest
from orchestrator.engines.mock import MockEngine
from tests.harness.engine.test_server import stream, streamed_tokens


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineThread]:
    with EngineThread(MockModel()) as thread:
        yield thread


@pytest.fixture
def control(engine: EngineThread) -> Iterator[EngineControl]:
    with EngineControl(engine.url) as handle:
        handle.reset()
        yield handle


def post(url: str, **body: Any) -> httpx.Response:
    body.setdefault("prompt", "hello")
    return httpx.post(f"{url}/v1/completions", json=body, timeout=10)


def embedded_tokens(prompt: str, seed: int, max_tokens: int) -> list[tuple[str, int]]:
    """What orchestratord's embedded mock engine generates (profile v1, default sampling)."""
    request = GenerationRequest(prompt, seed, max_tokens, 1.0, 1.0, "v1", "strict")

    async def collect() -> list[tuple[str, int]]:
        return [(t.text, t.token_id) async for t in MockEngine("r").generate(request)]

    return asyncio.run(collect())


def test_mock_tokens_are_the_embedded_engines_and_the_expected_function(
    engine: EngineThread, control: EngineControl
) -> None:
    payloads = stream(engine.url, prompt="queues", max_tokens=40, seed=9)
    streamed = [(text, token_id) for token_id, text in streamed_tokens(payloads)]
    assert streamed == expected_tokens("queues", 9, 40) == embedded_tokens("queues", 9, 40)
    whole = post(engine.url, prompt="queues", max_tokens=40, seed=9).json()["choices"][0]
    assert whole["token_ids"] == [token_id for _, token_id in streamed]
    assert whole["finish_reason"] == "length"
    models = httpx.get(f"{engine.url}/replicas/r7/v1/models").json()
    assert [(m["id"], m["version"]) for m in models["data"]] == [("mock", "mock-1")]


def test_requests_are_decoded_concurrently(engine: EngineThread, control: EngineControl) -> None:
    control.set_faults([rule({"hang_after_tokens": 1}, prompt_contains="held")])
    body = {"prompt": "held", "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{engine.url}/v1/completions", json=body) as held:
        lines = held.iter_lines()  # kept referenced: dropping it would hang up
        assert next(lines).startswith("data: ")
        # the hanging request holds nothing: another one completes meanwhile
        done = post(engine.url, max_tokens=3, seed=1).json()["choices"][0]
        assert done["finish_reason"] == "length"
        [request] = control.requests("held")
        assert (request.state, request.generated) == ("hanging", 1)
    [request] = control.wait_finished("held", timeout=10)
    assert request.state == "disconnected"


def test_replicas_faults_and_ledger(engine: EngineThread, control: EngineControl) -> None:
    control.set_faults(
        [
            rule({"token_delay_ms": 1}),
            rule({"stop_after_tokens": 2}, prompt_contains="short"),
            rule({"die_after_tokens": 3}, replica="r1"),
            rule({"rate_limit_retry_after_s": 4}, replica="r2", times=1),
        ]
    )
    short = stream(engine.url, prompt="a short one", max_tokens=10, seed=1)
    assert len(streamed_tokens(short)) == 2
    assert short[-2]["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(httpx.RemoteProtocolError):
        stream(control.replica_url("r1"), prompt="dies", max_tokens=10, seed=1)
    limited = post(control.replica_url("r2"), prompt="paced", max_tokens=2, seed=1)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "4"
    assert post(control.replica_url("r2"), prompt="paced", max_tokens=2, seed=1).status_code == 200
    seen = [
        (r.replica, r.prompt, r.status, r.state, r.generated, r.finish_reason)
        for r in control.requests()
    ]
    assert seen == [
        (None, "a short one", 200, "completed", 2, "stop"),
        ("r1", "dies", 200, "died", 3, None),
        ("r2", "paced", 429, "refused", 0, None),
        ("r2", "paced", 200, "completed", 2, "length"),
    ]
    assert control.requests()[1].faults == {"token_delay_ms": 1.0, "die_after_tokens": 3}
    assert control.generated("paced") == 2


def test_hang_keeps_the_connection_until_the_client_leaves(
    engine: EngineThread, control: EngineControl
) -> None:
    control.set_faults([rule({"hang_after_tokens": 2})])
    body = {"prompt": "wait", "max_tokens": 9, "stream": True}
    url = f"{engine.url}/v1/completions"
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", url, json=body, timeout=0.5) as response,
    ):
        for _ in response.iter_lines():
            pass
    [request] = control.wait_finished("wait", timeout=10)
    assert (request.state, request.generated) == ("disconnected", 2)


def test_unavailable_replica_refuses_its_probe_and_its_completions(
    engine: EngineThread, control: EngineControl
) -> None:
    control.set_faults([rule({"unavailable": True}, replica="down")])
    assert httpx.get(f"{control.replica_url('down')}/v1/models").status_code == 503
    assert httpx.get(f"{control.replica_url('down')}/health").status_code == 503
    assert post(control.replica_url("down")).status_code == 503
    assert httpx.get(f"{control.replica_url('up')}/v1/models").status_code == 200


def test_nondeterministic_mode_ignores_the_seed(
    engine: EngineThread, control: EngineControl
) -> None:
    control.set_faults([rule({"nondeterministic": True})])
    runs = {
        tuple(post(engine.url, max_tokens=8, seed=5).json()["choices"][0]["token_ids"])
        for _ in range(3)
    }
    assert len(runs) == 3
    assert [r.seed for r in control.requests()] == [5, 5, 5]


def test_bad_fault_rules_are_refused_naming_the_key(
    engine: EngineThread, control: EngineControl
) -> None:
    answer = httpx.put(
        f"{engine.url}/orchq/faults", json={"rules": [{"faults": {"die_after_tokens": -1}}]}
    )
    assert answer.status_code == 400
    assert "rules.rules[0].faults.die_after_tokens" in answer.json()["error"]["message"]
    assert httpx.get(f"{engine.url}/orchq/faults").json() == {"rules": []}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"rules": [{"faults": {"explode": True}}]}, "rules[0].faults.explode"),
        ({"rules": [{"faults": {}, "times": 0}]}, "rules[0].times"),
        ({"rules": [{"faults": {"token_delay_ms": "5"}}]}, "rules[0].faults.token_delay_ms"),
        ({"rules": [{"faults": {"unavailable": 1}}]}, "rules[0].faults.unavailable"),
        ({"rules": [{"prompt_contains": ""}]}, "rules[0].prompt_contains"),
        ({"rules": [{"colour": "red"}]}, "rules[0].colour"),
        ({"rulez": []}, "x"),
    ],
)
def test_fault_book_validation(data: Any, where: str) -> None:
    with pytest.raises(FaultError, match=where.replace("[", r"\[").replace("]", r"\]")):
        FaultBook.parse(data, where="x")


def test_rules_merge_in_order_and_times_run_out() -> None:
    book = FaultBook(
        [
            FaultRule({"token_delay_ms": 5.0}),
            FaultRule({"die_after_tokens": 1}, prompt_contains="x", times=1),
            FaultRule({"token_delay_ms": 7.0}, replica="r1"),
        ]
    )
    assert book.completion("r1", "x") == Faults(token_delay_ms=7.0, die_after_tokens=1)
    assert book.completion("r1", "x") == Faults(token_delay_ms=7.0)
    assert book.completion("r2", "x") == Faults(token_delay_ms=5.0)
    assert book.probe("r1") == Faults(token_delay_ms=7.0)

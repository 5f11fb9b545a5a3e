"""The engine server over real HTTP (uvicorn, loopback) around the deterministic fake model."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.engine.completions import TextStream
from harness.engine.server import EngineThread
from tests.harness.engine.fakes import FAIL_MARKER, STOP_MARKER, FakeModel

PROMPT = "Write a haiku about queues."


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def engine(model: FakeModel) -> Iterator[EngineThread]:
    with EngineThread(model) as thread:
        yield thread


def completion(url: str, **body: Any) -> httpx.Response:
    body.setdefault("prompt", PROMPT)
    return httpx.post(f"{url}/v1/completions", json=body, timeout=30)


def stream(url: str, **body: Any) -> list[Any]:
    """The parsed ``data:`` payloads of a streamed completion (``"[DONE]"`` kept as is)."""
    body.setdefault("prompt", PROMPT)
    payloads: list[Any] = []
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


def streamed_tokens(payloads: list[Any]) -> list[tuple[int, str]]:
    return [
        (p["choices"][0]["token_ids"][0], p["choices"][0]["text"])
        for p in payloads
        if p != "[DONE]" and "choices" in p and p["choices"][0]["finish_reason"] is None
    ]


def test_models_and_health_name_the_engine_version(engine: EngineThread) -> None:
    models = httpx.get(f"{engine.url}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["fake", "fake@f00d"]
    assert {m["version"] for m in models["data"]} == {"fake-1"}
    assert httpx.get(f"{engine.url}/health").json() == {
        "status": "ok",
        "model": "fake",
        "version": "fake-1",
    }


def test_stream_is_one_chunk_per_token_then_finish_reason_then_done(engine: EngineThread) -> None:
    payloads = stream(engine.url, max_tokens=12, seed=7, temperature=0.8, top_p=0.9)
    assert payloads[-1] == "[DONE]"
    final = payloads[-2]["choices"][0]
    assert final["finish_reason"] == "length"
    tokens = streamed_tokens(payloads)
    assert len(tokens) == 12
    assert all(p["system_fingerprint"] == "fake-1" for p in payloads[:-1])
    whole = completion(engine.url, max_tokens=12, seed=7, temperature=0.8, top_p=0.9).json()
    choice = whole["choices"][0]
    assert choice["token_ids"] == [token_id for token_id, _ in tokens]
    assert choice["text"] == "".join(text for _, text in tokens) + final["text"]
    assert choice["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 12


def test_seed_decides_the_tokens(engine: EngineThread) -> None:
    def tokens(seed: int) -> list[tuple[int, str]]:
        return streamed_tokens(stream(engine.url, max_tokens=16, seed=seed, temperature=1.0))

    assert tokens(3) == tokens(3)
    assert tokens(3) != tokens(4)


def test_stop_token_ends_with_finish_reason_stop(engine: EngineThread) -> None:
    payloads = stream(engine.url, prompt=f"x {STOP_MARKER}", max_tokens=10, seed=1)
    assert len(streamed_tokens(payloads)) == 3
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"


def test_partial_utf8_characters_are_held_back_until_whole(engine: EngineThread) -> None:
    model = FakeModel()
    for seed in range(200):  # find a seed whose tokens split the sparkles character
        ids = list(model.generate(model.encode(PROMPT), _params(seed)))
        if 7 in ids[:-1]:
            break
    else:
        pytest.fail("no seed produced the split character")
    tokens = streamed_tokens(stream(engine.url, max_tokens=24, seed=seed, temperature=1.0))
    texts = [text for _, text in tokens]
    assert "\ufffd" not in "".join(texts)
    split = [token_id for token_id, _ in tokens].index(7)
    assert texts[split] == ""  # held back...
    assert texts[split + 1].startswith("\u2728")  # ...and sent whole with the next token


def test_text_stream_flushes_a_character_cut_by_the_end() -> None:
    model = FakeModel()
    text = TextStream(model.decode)
    assert text.push(2) == " queue"
    assert text.push(7) == ""
    assert text.flush() == "\ufffd"


def test_requests_are_decoded_one_at_a_time_and_concurrency_changes_nothing() -> None:
    model = FakeModel(delay_s=0.005)
    with EngineThread(model, max_waiting=16) as engine:
        alone = {
            seed: streamed_tokens(stream(engine.url, max_tokens=8, seed=seed)) for seed in range(4)
        }
        together: dict[int, list[tuple[int, str]]] = {}

        def run(seed: int) -> None:
            together[seed] = streamed_tokens(stream(engine.url, max_tokens=8, seed=seed))

        threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert together == alone
    assert model.max_active == 1, "two requests were decoded at the same time"


def test_busy_engine_answers_429_with_retry_after() -> None:
    model = FakeModel(delay_s=0.05)
    with EngineThread(model, max_waiting=0) as engine:
        with httpx.stream(
            "POST",
            f"{engine.url}/v1/completions",
            json={"prompt": PROMPT, "max_tokens": 20, "seed": 1, "stream": True},
        ) as first:
            lines = first.iter_lines()  # kept referenced: dropping it would hang up
            assert next(lines).startswith("data: ")  # the first request holds the model
            second = completion(engine.url, max_tokens=1, seed=2)
            assert sum(1 for line in lines if line == "data: [DONE]") == 1
        assert second.status_code == 429
        assert second.headers["Retry-After"] == "1"
        assert second.json()["error"]["type"] == "rate_limit_error"


def test_model_failure_mid_stream_is_an_in_band_error(engine: EngineThread) -> None:
    payloads = stream(engine.url, prompt=f"x {FAIL_MARKER}", max_tokens=10, seed=1)
    assert len(streamed_tokens(payloads)) == 2
    assert "fake model failure" in payloads[-1]["error"]["message"]
    assert "[DONE]" not in payloads


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"seed": "7"}, "seed"),
        ({"prompt": ""}, "prompt"),
        ({"stream": "yes"}, "stream"),
        ({"max_tokens": 5000}, "max_tokens"),  # beyond the fake's context length
    ],
)
def test_bad_requests_get_400_naming_the_field(
    engine: EngineThread, body: dict[str, Any], param: str
) -> None:
    response = completion(engine.url, **body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_model_and_bad_json_get_400(engine: EngineThread) -> None:
    assert completion(engine.url, model="gpt-9").status_code == 400
    wrong_pin = completion(engine.url, model="fake@beef")
    assert wrong_pin.status_code == 400
    assert wrong_pin.json()["error"]["param"] == "model"
    assert completion(engine.url, model="fake@f00d", max_tokens=1).status_code == 200
    assert completion(engine.url, model="fake", max_tokens=1).status_code == 200
    raw = httpx.post(f"{engine.url}/v1/completions", content=b"{not json")
    assert raw.status_code == 400


def _params(seed: int) -> Any:
    from harness.engine.model import SamplingParams

    return SamplingParams(max_tokens=24, temperature=1.0, top_p=1.0, seed=seed)

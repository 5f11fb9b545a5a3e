"""The ``openai`` engine end to end through the runtime, its HTTP edge mocked with respx.

respx patches httpx process-wide: the server thread's engine clients hit the
mocked ``engine-a.test`` / ``engine-b.test``, and the test's own client to
orchestratord passes through to 127.0.0.1. Fixture order matters: ``respx_mock``
is set up before the server and torn down after it, so a replica's health
probe can never reach the real network.

Spec: ORCH-0044, ORCH-0102, ORCH-0103, ORCH-0104, ORCH-0106, ORCH-0108, ORCH-0109,
ORCH-0110, ORCH-0111, ORCH-0112.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from tests.orchestrator.faults.faultkit import (
    Orch,
    assert_slots_free,
    attempt_rows,
    read_stream,
    replica_states,
)
from tests.support import pool, wait_until

ENGINE_A = "http://engine-a.test"
ENGINE_B = "http://engine-b.test"
MODEL = "m"

pytestmark = pytest.mark.respx(assert_all_called=False)


def fake_text(seed: int, index: int) -> str:
    return f" s{seed}t{index}"


def token_chunks(request: httpx.Request) -> list[bytes]:
    """The SSE chunks of a completion, vLLM-shaped: one per token, then ``[DONE]``."""
    body = json.loads(request.content)
    count, seed = body["max_tokens"], body["seed"]
    parts = []
    for i in range(count):
        choice = {
            "index": 0,
            "text": fake_text(seed, i),
            "token_ids": [1000 + i],
            "finish_reason": "length" if i == count - 1 else None,
        }
        chunk = {"id": "cmpl-1", "object": "text_completion", "model": MODEL, "choices": [choice]}
        parts.append(f"data: {json.dumps(chunk)}\n\n".encode())
    return [*parts, b"data: [DONE]\n\n"]


def event_stream(body: AsyncIterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)


def sse_tokens(request: httpx.Request) -> httpx.Response:
    """A whole completion stream (a fresh body per call: a body is read once)."""

    async def stream() -> AsyncIterator[bytes]:
        for part in token_chunks(request):
            yield part

    return event_stream(stream())


def sse_tokens_then(count: int, failure: str) -> Callable[[httpx.Request], httpx.Response]:
    """``count`` tokens of :func:`sse_tokens`, then the connection breaks or stalls forever."""

    def handler(request: httpx.Request) -> httpx.Response:
        async def stream() -> AsyncIterator[bytes]:
            for part in token_chunks(request)[:count]:
                yield part
            if failure == "reset":
                raise httpx.ReadError("connection reset by peer", request=request)
            await asyncio.Event().wait()  # stall; the runtime's decode timeout cancels us
            yield b""  # pragma: no cover

        return event_stream(stream())

    return handler


def stops_at_once(request: httpx.Request) -> httpx.Response:
    """The model ends the completion before its first token: a finish chunk with no text."""

    async def stream() -> AsyncIterator[bytes]:
        choice = {"index": 0, "text": "", "finish_reason": "stop"}
        chunk = {"id": "cmpl-1", "object": "text_completion", "model": MODEL, "choices": [choice]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return event_stream(stream())


def too_many_requests(retry_after: str) -> httpx.Response:
    return httpx.Response(
        429,
        headers={"Retry-After": retry_after, "Content-Type": "application/json"},
        json={"error": {"message": "server busy", "type": "rate_limit"}},
    )


MODELS_OK = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}


@dataclass
class FakeEngine:
    """One mocked OpenAI-compatible server: scripted completions, switchable model list."""

    host: str
    completions: list[Callable[[httpx.Request], httpx.Response]]
    """Handlers for successive POST /v1/completions calls; the last one repeats."""
    reachable: bool = True
    """Whether GET /v1/models answers (False: connection refused)."""
    completion_calls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    model_calls: list[tuple[float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_completion(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.completion_calls.append((time.monotonic(), json.loads(request.content)))
            number = len(self.completion_calls)
        handler = self.completions[min(number, len(self.completions)) - 1]
        return handler(request)

    def on_models(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.model_calls.append((time.monotonic(), self.reachable))
            reachable = self.reachable
        if not reachable:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=MODELS_OK)

    def mount(self, router: respx.MockRouter) -> FakeEngine:
        router.post(f"{self.host}/v1/completions").mock(side_effect=self.on_completion)
        router.get(f"{self.host}/v1/models").mock(side_effect=self.on_models)
        return self

    @property
    def seeds(self) -> list[int]:
        return [body["seed"] for _, body in self.completion_calls]


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def openai_pool(*hosts: str, **keys: Any) -> dict[str, Any]:
    replicas = [
        {"replica_id": f"r{i + 1}", "engine": "openai", "base_url": host, "model": MODEL}
        for i, host in enumerate(hosts)
    ]
    return pool("default", replicas=replicas, **keys)


@pytest.fixture
def router(respx_mock: respx.MockRouter) -> respx.MockRouter:
    respx_mock.route(host="127.0.0.1").pass_through()
    return respx_mock


@pytest.fixture
def start(router: respx.MockRouter, orch: Callable[..., Orch]) -> Callable[..., Orch]:
    """Start orchestratord only once the engines are mocked (and stop it before respx stops)."""
    return orch


@pytest.mark.req("ORCH-0044")
def test_tokens_flow_to_the_stream_with_the_seed_sent_to_the_engine(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A))
    assert replica_states(o.client) == {"r1": "ready"}

    run = o.run("hello engine", max_tokens=5, seed=1234, determinism="strict", temperature=0.5)

    assert run.terminal.event == "end"
    assert run.terminal.data == {"tokens_out": 5, "finish_reason": "length", "seed": 1234}
    started = run.events[0].data
    assert (started["engine"], started["engine_version"], started["replica_id"]) == (
        "openai",
        f"openai:{MODEL}",
        "r1",
    )
    assert run.tokens == [(i, fake_text(1234, i), 1000 + i) for i in range(5)]
    [(_, body)] = a.completion_calls
    assert body == {
        "model": MODEL,
        "prompt": "hello engine",
        "max_tokens": 5,
        "temperature": 0.5,
        "top_p": 1.0,
        "seed": 1234,
        "stream": True,
    }
    task = run.task
    assert (task.state, task.engine, task.tokens_out) == ("completed", "openai", 5)
    assert attempt_rows(task) == [(1, "r1", "completed", None)]

    # Without a seed the server picks one, returns it, and that is what the engine gets.
    admitted = o.client.submit_task(o.session_id, "pick a seed", max_tokens=2)
    unseeded = o.finish(admitted.task_id)
    assert unseeded.terminal.event == "end"
    assert a.seeds[-1] == admitted.seed
    assert unseeded.tokens[0][1] == fake_text(admitted.seed, 0)
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0109")
def test_engine_429_with_aggressive_fallback_moves_to_the_other_replica(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [lambda _: too_many_requests("20")]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))

    began = time.monotonic()
    run = o.run("busy engine", max_tokens=4, seed=5, determinism="strict")
    elapsed = time.monotonic() - began

    assert run.terminal.event == "end"
    assert run.events[0].data["replica_id"] == "r2"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_RATE_LIMITED"),
        (2, "r2", "completed", None),
    ]
    assert (a.seeds, b.seeds) == ([5], [5])
    assert elapsed < 10, f"aggressive_fallback waited {elapsed:.1f} s for a 20 s Retry-After"
    # A 429 is back-pressure, not an outage: the replica stays in rotation.
    assert replica_states(o.client) == {"r1": "ready", "r2": "ready"}
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0110")
def test_engine_429_with_intelligent_pacing_waits_then_retries_the_same_replica(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [lambda _: too_many_requests("0.3"), sse_tokens]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B), fallback_mode="intelligent_pacing")

    run = o.run("slow down", max_tokens=4, seed=6, determinism="strict")

    assert run.terminal.event == "end"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_RATE_LIMITED"),
        (2, "r1", "completed", None),
    ]
    assert b.completion_calls == []
    (first, _), (second, _) = a.completion_calls
    assert second - first >= 0.3, "the engine's Retry-After was not honoured"
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0102")
def test_engine_429_everywhere_exhausts_attempts(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    FakeEngine(ENGINE_A, [lambda _: too_many_requests("20")]).mount(router)
    FakeEngine(ENGINE_B, [lambda _: too_many_requests("20")]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B, max_attempts=2))

    run = o.run("nobody home", max_tokens=4)

    assert run.kinds == ["error"]
    assert run.terminal.data["kind"] == "REPLICA_EXHAUSTED"
    assert [r[3] for r in attempt_rows(run.task)] == ["ENGINE_RATE_LIMITED"] * 2


@pytest.mark.req("ORCH-0103")
def test_unreachable_engine_marks_the_replica_down_and_the_task_moves_on(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [refuse]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))
    assert replica_states(o.client) == {"r1": "ready", "r2": "ready"}
    a.reachable = False  # the engine dies after warming up

    run = o.run("engine died", max_tokens=4, seed=8, determinism="strict")

    assert run.terminal.event == "end"
    assert run.events[0].data["replica_id"] == "r2"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_UNAVAILABLE"),
        (2, "r2", "completed", None),
    ]
    view = o.client.get_pool("default")
    assert view.ready is True
    assert {r.replica_id: r.state for r in view.replicas} == {"r1": "down", "r2": "ready"}
    # A down replica gets no work: the next tasks go straight to r2.
    for _ in range(2):
        nxt = o.run("after the outage", max_tokens=2)
        assert attempt_rows(nxt.task) == [(1, "r2", "completed", None)]
    assert len(a.completion_calls) == 1
    assert len(b.completion_calls) == 3
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0077", "ORCH-0079", "ORCH-0085")
def test_a_task_the_engine_ends_before_any_token_still_has_its_started_event(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    FakeEngine(ENGINE_A, [stops_at_once]).mount(router)
    o = start(openai_pool(ENGINE_A))

    run = o.run("say nothing", max_tokens=8, seed=77, determinism="strict")

    assert run.kinds == ["started", "end"]
    assert run.events[0].data == {
        "task_id": run.task_id,
        "replica_id": "r1",
        "engine": "openai",
        "engine_version": f"openai:{MODEL}",
        "seed": 77,
        "sampler_profile_version": "v1",
    }
    assert run.terminal.data == {"tokens_out": 0, "finish_reason": "stop", "seed": 77}
    assert (run.task.state, run.task.tokens_out) == ("completed", 0)
    assert attempt_rows(run.task) == [(1, "r1", "completed", None)]
    # The finished task replays the same two events from the database.
    assert read_stream(o.url, run.task_id) == run.events


@pytest.mark.req("ORCH-0104", "ORCH-0106")
def test_stream_broken_mid_decode_is_continued_strictly_on_the_other_replica(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [sse_tokens_then(2, "reset")]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))

    run = o.run("cut me off", max_tokens=5, seed=21, determinism="strict")

    assert run.terminal.event == "end", run.terminal
    assert run.kinds == ["started"] + ["token"] * 5 + ["end"]
    assert run.tokens == [(i, fake_text(21, i), 1000 + i) for i in range(5)]
    assert run.events[0].data["replica_id"] == "r1"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "completed", None),
    ]
    assert (a.seeds, b.seeds) == ([21], [21])
    # A reset is not an outage: r1 stays in rotation.
    assert replica_states(o.client) == {"r1": "ready", "r2": "ready"}
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0108")
def test_stream_broken_mid_decode_ends_a_best_effort_task(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    FakeEngine(ENGINE_A, [sse_tokens_then(2, "reset")]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))

    run = o.run("cut me off", max_tokens=5, seed=21)

    assert run.kinds == ["started", "token", "token", "error"]
    assert run.terminal.data["kind"] == "WORKER_RESET"
    assert attempt_rows(run.task) == [(1, "r1", "failed", "WORKER_RESET")]
    assert b.completion_calls == []


def sse_tokens_then_chunk(count: int, chunk: dict[str, Any]) -> Callable[..., httpx.Response]:
    """``count`` tokens of :func:`sse_tokens`, then ``chunk`` (sent escaped, as json.dumps does)."""

    def handler(request: httpx.Request) -> httpx.Response:
        async def stream() -> AsyncIterator[bytes]:
            for part in token_chunks(request)[:count]:
                yield part
            yield f"data: {json.dumps(chunk)}\n\n".encode()

        return event_stream(stream())

    return handler


@pytest.mark.req("ORCH-0060", "ORCH-0104", "ORCH-0106")
def test_a_token_that_is_not_valid_unicode_is_a_reset_and_the_task_still_ends(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    # An unpaired surrogate cannot be stored or sent as UTF-8: before the engine
    # refused it, the task's events were rolled back and its stream never ended.
    choice = {"index": 0, "text": "\ud800", "token_ids": [7], "finish_reason": None}
    FakeEngine(ENGINE_A, [sse_tokens_then_chunk(2, {"choices": [choice]})]).mount(router)
    FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))

    run = o.run("odd bytes", max_tokens=4, seed=5, determinism="strict")

    assert run.kinds == ["started"] + ["token"] * 4 + ["end"], run.terminal
    assert run.tokens == [(i, fake_text(5, i), 1000 + i) for i in range(4)]
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "completed", None),
    ]
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0060", "ORCH-0108")
def test_an_engine_error_message_that_is_not_valid_unicode_still_ends_the_task(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    broken = {"error": {"message": "bad \udc80 byte", "type": "server_error"}}
    FakeEngine(ENGINE_A, [sse_tokens_then_chunk(1, broken)]).mount(router)
    o = start(openai_pool(ENGINE_A))

    run = o.run("odd error", max_tokens=3, seed=6)

    assert run.kinds == ["started", "token", "error"]
    assert run.terminal.data["kind"] == "WORKER_RESET"
    assert "bad \\udc80 byte" in run.terminal.data["message"]
    task = run.task  # read over HTTP: the stored error is valid JSON text
    assert (task.state, task.error is not None) == ("failed", True)
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0111", "ORCH-0112")
def test_stalled_engine_stream_ends_in_decode_timeout(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [sse_tokens_then(2, "stall")]).mount(router)
    b = FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B, decode_timeout_ms=200))

    run = o.run("stall", max_tokens=5, seed=22, determinism="strict")

    assert run.kinds == ["started", "token", "token", "error"]
    assert run.terminal.data["kind"] == "DECODE_TIMEOUT"
    assert attempt_rows(run.task) == [(1, "r1", "failed", "DECODE_TIMEOUT")]
    assert len(a.completion_calls) == 1
    assert b.completion_calls == [], "a decode timeout is not retried"
    assert_slots_free(o.client)


@pytest.mark.slow
def test_a_down_replica_is_probed_every_2_s_and_comes_back(
    router: respx.MockRouter, start: Callable[..., Orch]
) -> None:
    a = FakeEngine(ENGINE_A, [refuse, sse_tokens]).mount(router)
    FakeEngine(ENGINE_B, [sse_tokens]).mount(router)
    o = start(openai_pool(ENGINE_A, ENGINE_B))
    a.reachable = False

    run = o.run("engine died", max_tokens=2)
    assert attempt_rows(run.task)[0] == (1, "r1", "failed", "ENGINE_UNAVAILABLE")
    assert replica_states(o.client)["r1"] == "down"
    wait_until(lambda: len(a.model_calls) >= 2)  # warm-up, then the first failed probe
    a.reachable = True

    wait_until(lambda: replica_states(o.client)["r1"] == "ready", timeout=6.0)

    probes = [at for at, _ in a.model_calls[1:]]
    assert len(probes) >= 2
    assert all(later - earlier >= 1.95 for earlier, later in itertools.pairwise(probes))
    # Back in rotation: r1 serves again (routing alternates between two idle replicas).
    served = {attempt_rows(o.run("back", max_tokens=2).task)[0][1] for _ in range(2)}
    assert served == {"r1", "r2"}
    assert_slots_free(o.client)

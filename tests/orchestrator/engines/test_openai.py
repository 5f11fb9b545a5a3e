"""The ``openai`` engine against mocked OpenAI-compatible servers.

respx mocks the HTTP edge we do not own (llama.cpp server, vLLM). A few tests
use a raw socket server instead, where respx cannot show the behaviour: a
connection cut inside chunked encoding, and whether the engine really closes
the connection on cancellation and truncation.

Spec: none. The engine's HTTP client in isolation; the server behaviour it feeds
(retries, rate limits, timeouts) is cited in faults/test_openai_runtime.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import respx

from orchestrator.config import ReplicaConfig
from orchestrator.engines import build_engine
from orchestrator.engines.base import (
    Engine,
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)
from orchestrator.engines.openai import (
    OpenAIEngine,
    normalise_base_url,
    parse_retry_after,
    text_token_id,
)

BASE = "http://llm.test:8080"
COMPLETIONS = f"{BASE}/v1/completions"
MODELS = f"{BASE}/v1/models"
HEALTH = f"{BASE}/health"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def make_request(max_tokens: int = 16, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "prompt": "Write a haiku about queues.",
        "seed": 1234,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.9,
        "sampler_profile_version": "v1",
        "determinism": "strict",
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def chunk(text: str, finish: str | None = None, **choice_extra: Any) -> dict[str, Any]:
    """One streamed completion chunk, shaped like vLLM's and llama.cpp's."""
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    choice.update(choice_extra)
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1700000000,
        "model": "m",
        "choices": [choice],
    }


def sse(*events: dict[str, Any] | str) -> list[bytes]:
    """``data:`` events, one network chunk each; a str is sent verbatim as the payload."""
    return [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]


def streaming(
    parts: list[bytes],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    then_raise: type[httpx.TransportError] | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect building a fresh streamed response per call (bodies read once)."""

    def side_effect(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            for part in parts:
                yield part
            if then_raise is not None:
                raise then_raise("connection reset by peer", request=request)

        return httpx.Response(
            status,
            headers={"Content-Type": "text/event-stream", **(headers or {})},
            content=body(),
        )

    return side_effect


HAPPY: list[dict[str, Any] | str] = [
    chunk(" Orders", token_ids=[101]),
    chunk(" wait"),
    {**chunk(" in"), "tokens": [7]},
    chunk(" line", finish="length"),
    "[DONE]",
]


async def collect(engine: OpenAIEngine, request: GenerationRequest) -> list[Token]:
    return [token async for token in engine.generate(request)]


async def collect_until_error(
    engine: OpenAIEngine, request: GenerationRequest, error: type[Exception]
) -> tuple[list[Token], Exception]:
    tokens: list[Token] = []

    async def drain() -> None:
        async for token in engine.generate(request):
            tokens.append(token)

    with pytest.raises(error) as info:
        await drain()
    return tokens, info.value


@pytest.fixture
async def engine() -> AsyncIterator[OpenAIEngine]:
    eng = OpenAIEngine(replica_id="r7", base_url=BASE, model="m", request_timeout_ms=12_500)
    yield eng
    await eng.aclose()


# --- happy path ----------------------------------------------------------------


async def test_streams_tokens_in_order(engine: OpenAIEngine, respx_mock: respx.MockRouter) -> None:
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*HAPPY)))

    tokens = await collect(engine, make_request())

    assert tokens == [
        Token(index=0, text=" Orders", token_id=101),  # choices[0].token_ids (vLLM)
        Token(index=1, text=" wait", token_id=text_token_id(" wait")),
        Token(index=2, text=" in", token_id=7),  # chunk-level tokens (llama.cpp)
        Token(index=3, text=" line", token_id=text_token_id(" line")),
    ]


async def test_request_body_carries_the_sampling_parameters(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*HAPPY)))

    await collect(engine, make_request(max_tokens=5, seed=99, temperature=0.0, top_p=0.5))

    request = route.calls.last.request
    assert json.loads(request.content) == {
        "model": "m",
        "prompt": "Write a haiku about queues.",
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 0.5,
        "seed": 99,
        "stream": True,
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://llm.test:8080", "http://llm.test:8080/v1/completions"),
        ("http://llm.test:8080/", "http://llm.test:8080/v1/completions"),
        ("http://llm.test:8080/v1", "http://llm.test:8080/v1/completions"),
        ("http://llm.test:8080/v1/", "http://llm.test:8080/v1/completions"),
        ("http://llm.test:8080//v1//", "http://llm.test:8080/v1/completions"),
        ("https://gw.test/llama/v1", "https://gw.test/llama/v1/completions"),
        ("https://gw.test/llama", "https://gw.test/llama/v1/completions"),
    ],
)
async def test_base_url_is_normalised(
    base_url: str, expected: str, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(expected).mock(side_effect=streaming(sse(*HAPPY)))
    eng = OpenAIEngine(replica_id="r1", base_url=base_url, model="m")
    try:
        assert len(await collect(eng, make_request())) == 4
    finally:
        await eng.aclose()
    assert route.call_count == 1
    assert str(route.calls.last.request.url) == expected


def test_normalise_base_url_only_strips_a_final_v1() -> None:
    assert normalise_base_url("http://h/v1x/") == "http://h/v1x"
    assert normalise_base_url("http://h/api/v1/") == "http://h/api"


@pytest.mark.parametrize("api_key", ["sk-test", None])
async def test_bearer_token_is_sent_only_when_configured(
    api_key: str | None, respx_mock: respx.MockRouter
) -> None:
    completions = respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*HAPPY)))
    models = respx_mock.get(MODELS).respond(200, json={"object": "list", "data": []})
    eng = OpenAIEngine(replica_id="r1", base_url=BASE, model="m", api_key=api_key)
    try:
        await eng.warmup()
        await collect(eng, make_request())
    finally:
        await eng.aclose()
    for route in (completions, models):
        headers = route.calls.last.request.headers
        if api_key is None:
            assert "Authorization" not in headers
        else:
            assert headers["Authorization"] == "Bearer sk-test"


async def test_read_timeout_is_the_request_timeout_not_shorter(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    route = respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*HAPPY)))

    await collect(engine, make_request())

    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 12.5,
        "read": 12.5,
        "write": 12.5,
        "pool": 12.5,
    }


async def test_max_tokens_truncates_a_longer_stream(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    events = [chunk(f" t{i}") for i in range(10)]
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*events, "[DONE]")))

    tokens = await collect(engine, make_request(max_tokens=3))

    assert [t.text for t in tokens] == [" t0", " t1", " t2"]
    assert [t.index for t in tokens] == [0, 1, 2]


async def test_zero_max_tokens_sends_nothing(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    assert await collect(engine, make_request(max_tokens=0)) == []
    assert not respx_mock.calls


async def test_empty_and_choiceless_chunks_are_skipped(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    usage_only = {"id": "cmpl-1", "choices": [], "usage": {"completion_tokens": 2}}
    events = [chunk(""), chunk(" a"), chunk("", token_ids=[]), chunk(" b"), usage_only]
    respx_mock.post(COMPLETIONS).mock(
        side_effect=streaming(sse(*events, chunk("", finish="stop"), "[DONE]"))
    )

    tokens = await collect(engine, make_request())

    assert [(t.index, t.text) for t in tokens] == [(0, " a"), (1, " b")]


async def test_finish_reason_without_done_ends_normally(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(
        side_effect=streaming(sse(chunk(" a"), chunk(" b", finish="stop")))
    )

    assert [t.text for t in await collect(engine, make_request())] == [" a", " b"]


async def test_sse_framing_variants(engine: OpenAIEngine, respx_mock: respx.MockRouter) -> None:
    # comments, CRLF, no space after "data:", an event split across network
    # chunks, and a final [DONE] without its blank line
    body = [
        b": ping\r\n\r\n",
        b'data:{"choices":[{"text":" x","finish_reason":null}]}\r\n\r\n',
        b'data: {"choices":[{"text":" y",',
        b'"finish_reason":null}]}\n\n',
        b"data: [DONE]",
    ]
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(body))

    assert [t.text for t in await collect(engine, make_request())] == [" x", " y"]


def test_text_token_id_is_stable_and_31_bit() -> None:
    assert text_token_id(" wait") == text_token_id(" wait")
    assert text_token_id(" wait") != text_token_id(" Wait")
    assert all(0 <= text_token_id(s) < 2**31 for s in ["", " a", "\n", "日本"])


async def test_invalid_token_ids_fall_back_to_the_text_hash(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    events = [chunk(" a", token_ids=[True]), chunk(" b", token_ids=[-1]), chunk(" c")]
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(*events, "[DONE]")))

    tokens = await collect(engine, make_request())

    assert [t.token_id for t in tokens] == [text_token_id(s) for s in (" a", " b", " c")]


# --- errors before any token -------------------------------------------------------


async def test_429_with_retry_after_seconds(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).respond(
        429, headers={"Retry-After": "7"}, json={"error": {"message": "slots busy"}}
    )

    _, error = await collect_until_error(engine, make_request(), EngineRateLimited)

    assert isinstance(error, EngineRateLimited)
    assert error.retry_after_s == 7.0
    assert "r7" in str(error)
    assert "slots busy" in str(error)


async def test_429_with_retry_after_http_date(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    respx_mock.post(COMPLETIONS).respond(429, headers={"Retry-After": when})

    _, error = await collect_until_error(engine, make_request(), EngineRateLimited)

    assert isinstance(error, EngineRateLimited)
    assert 110 <= error.retry_after_s <= 121


@pytest.mark.parametrize("header", [None, "soon", "", "-3", "nan"])
async def test_429_without_usable_retry_after(
    header: str | None, engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    headers = {} if header is None else {"Retry-After": header}
    respx_mock.post(COMPLETIONS).respond(429, headers=headers)

    _, error = await collect_until_error(engine, make_request(), EngineRateLimited)

    assert isinstance(error, EngineRateLimited)
    assert error.retry_after_s == 0.0


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 2.5 ", now=now) == 2.5
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Wed, 99 Foo 2024 99:99:99 GMT", now=now) == 0.0
    assert parse_retry_after("inf", now=now) == 0.0
    assert parse_retry_after(None, now=now) == 0.0


@pytest.mark.parametrize("status", [500, 502, 503, 400, 401, 404, 302])
async def test_non_2xx_is_unavailable(
    status: int, engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).respond(status, text="model overloaded")

    tokens, error = await collect_until_error(engine, make_request(), EngineUnavailable)

    assert tokens == []
    assert "r7" in str(error)
    assert str(status) in str(error)
    assert "model overloaded" in str(error)


async def test_error_body_excerpt_is_bounded(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).respond(503, text="x" * 100_000)

    _, error = await collect_until_error(engine, make_request(), EngineUnavailable)

    assert len(str(error)) < 400


async def test_non_event_stream_answer_is_unavailable(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).respond(200, json={"choices": [{"text": "all at once"}]})

    _, error = await collect_until_error(engine, make_request(), EngineUnavailable)

    assert "application/json" in str(error)


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_transport_failure_before_headers_is_unavailable(
    exc: type[httpx.TransportError], engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(side_effect=exc("no route"))

    _, error = await collect_until_error(engine, make_request(), EngineUnavailable)

    assert "r7" in str(error)
    assert isinstance(error.__cause__, exc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_connection_refused_is_unavailable() -> None:
    eng = OpenAIEngine(replica_id="r3", base_url=f"http://127.0.0.1:{free_port()}", model="m")
    try:
        _, error = await collect_until_error(eng, make_request(), EngineUnavailable)
    finally:
        await eng.aclose()
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert "r3" in str(error)


# --- errors after the stream started --------------------------------------------------


@pytest.mark.parametrize("exc", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
async def test_stream_cut_midway_is_reset(
    exc: type[httpx.TransportError], engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(
        side_effect=streaming(sse(chunk(" a"), chunk(" b")), then_raise=exc)
    )

    tokens, error = await collect_until_error(engine, make_request(), EngineReset)

    assert [t.text for t in tokens] == [" a", " b"]
    assert "after 2 tokens" in str(error)
    assert isinstance(error.__cause__, exc)


async def test_stream_ending_without_done_or_finish_is_reset(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(chunk(" a"))))

    tokens, error = await collect_until_error(engine, make_request(), EngineReset)

    assert len(tokens) == 1
    assert "without [DONE]" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        sse(chunk(" a"), {"error": {"message": "CUDA out of memory", "type": "server_error"}}),
        sse(chunk(" a"), {"error": "CUDA out of memory"}),
        [*sse(chunk(" a")), b"event: error\ndata: CUDA out of memory\n\n"],
        [*sse(chunk(" a")), b'error: {"message": "CUDA out of memory"}\n\n'],
    ],
    ids=["openai-error-object", "error-string", "sse-error-event", "llama-cpp-error-line"],
)
async def test_error_inside_the_stream_is_reset(
    body: list[bytes], engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming([*body, *sse("[DONE]")]))

    tokens, error = await collect_until_error(engine, make_request(), EngineReset)

    assert [t.text for t in tokens] == [" a"]
    assert "CUDA out of memory" in str(error)
    assert "r7" in str(error)


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", '"text"'])
async def test_garbage_in_the_stream_is_reset(
    payload: str, engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(side_effect=streaming(sse(chunk(" a"), payload, "[DONE]")))

    tokens, _ = await collect_until_error(engine, make_request(), EngineReset)

    assert len(tokens) == 1


async def test_text_with_an_unpaired_surrogate_is_reset(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    # json.dumps escapes it: the wire carries the six characters \ud800, which
    # json.loads turns into text that UTF-8 (and so SQLite and the stream) cannot carry.
    respx_mock.post(COMPLETIONS).mock(
        side_effect=streaming(sse(chunk(" a"), chunk("x\ud800"), "[DONE]"))
    )

    tokens, error = await collect_until_error(engine, make_request(), EngineReset)

    assert [t.text for t in tokens] == [" a"]
    assert "after 1 tokens is not valid Unicode" in str(error)
    str(error).encode()  # the message itself can be stored and sent


async def test_an_error_message_with_an_unpaired_surrogate_is_escaped(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.post(COMPLETIONS).mock(
        side_effect=streaming(sse(chunk(" a"), {"error": {"message": "bad \udc80 byte"}}))
    )

    _, error = await collect_until_error(engine, make_request(), EngineReset)

    assert "bad \\udc80 byte" in str(error)
    str(error).encode()


# --- real sockets: cut connections, cancellation, truncation ---------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback HTTP/1.1 server whose handler writes bytes by hand."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/"
    finally:
        server.close()
        await server.wait_closed()


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_connection_dropped_inside_chunked_body_is_reset() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(STREAM_HEAD + http_chunk(sse(chunk(" a"))[0]) + b"40\r\ndata: {")
        await writer.drain()  # then the "replica" dies: the connection closes

    async with raw_server(handler) as url:
        eng = OpenAIEngine(replica_id="r5", base_url=url, model="m")
        try:
            tokens, error = await collect_until_error(eng, make_request(), EngineReset)
        finally:
            await eng.aclose()
    assert [t.text for t in tokens] == [" a"]
    assert isinstance(error.__cause__, httpx.RemoteProtocolError)


def hang_after(
    events: list[bytes], client_gone: asyncio.Event
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(STREAM_HEAD + b"".join(http_chunk(e) for e in events))
        await writer.drain()
        await reader.read()  # returns b"" once the client closes the connection
        client_gone.set()

    return handler


async def test_cancellation_propagates_and_closes_the_connection() -> None:
    client_gone = asyncio.Event()
    first_token = asyncio.Event()
    handler = hang_after(sse(chunk(" a")), client_gone)

    async with raw_server(handler) as url:
        eng = OpenAIEngine(replica_id="r5", base_url=url, model="m")
        try:

            async def consume() -> None:
                async for _ in eng.generate(make_request()):
                    first_token.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first_token.wait(), 5)
            task.cancel()  # what the runtime does on a decode timeout
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(client_gone.wait(), 5)
        finally:
            await eng.aclose()


async def test_truncation_does_not_wait_for_more_and_closes_the_connection() -> None:
    client_gone = asyncio.Event()
    handler = hang_after(sse(chunk(" a"), chunk(" b"), chunk(" c")), client_gone)

    async with raw_server(handler) as url:
        eng = OpenAIEngine(replica_id="r5", base_url=url, model="m")
        try:
            tokens = await asyncio.wait_for(collect(eng, make_request(max_tokens=3)), 5)
            await asyncio.wait_for(client_gone.wait(), 5)
        finally:
            await eng.aclose()
    assert [t.text for t in tokens] == [" a", " b", " c"]


async def test_consumer_stopping_early_closes_the_connection() -> None:
    client_gone = asyncio.Event()
    handler = hang_after(sse(chunk(" a"), chunk(" b")), client_gone)

    async with raw_server(handler) as url:
        eng = OpenAIEngine(replica_id="r5", base_url=url, model="m")
        try:
            stream = eng.generate(make_request())
            assert (await anext(stream)).text == " a"
            await stream.aclose()  # type: ignore[attr-defined]
            await asyncio.wait_for(client_gone.wait(), 5)
        finally:
            await eng.aclose()


# --- warmup, identity, lifecycle ---------------------------------------------------


async def test_warmup_ok(engine: OpenAIEngine, respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(MODELS).respond(
        200, json={"object": "list", "data": [{"id": "m", "object": "model"}]}
    )

    await engine.warmup()

    assert route.call_count == 1
    assert route.calls.last.request.extensions["timeout"]["connect"] == 5.0
    assert engine.version == "openai:m"


async def test_warmup_falls_back_to_health(
    engine: OpenAIEngine, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(MODELS).respond(404)
    health = respx_mock.get(HEALTH).respond(200, json={"status": "ok"})

    await engine.warmup()

    assert health.call_count == 1


def models_503(router: respx.MockRouter) -> None:
    router.get(MODELS).respond(503, json={"error": {"message": "Loading model"}})


def models_refused(router: respx.MockRouter) -> None:
    router.get(MODELS).mock(side_effect=httpx.ConnectError("refused"))


def models_timeout(router: respx.MockRouter) -> None:
    router.get(MODELS).mock(side_effect=httpx.ConnectTimeout("slow"))


def models_and_health_404(router: respx.MockRouter) -> None:
    router.get(MODELS).respond(404)
    router.get(HEALTH).respond(404)


@pytest.mark.parametrize(
    "setup", [models_503, models_refused, models_timeout, models_and_health_404]
)
async def test_warmup_failing_is_unavailable(
    setup: Callable[[respx.MockRouter], None],
    engine: OpenAIEngine,
    respx_mock: respx.MockRouter,
) -> None:
    setup(respx_mock)

    with pytest.raises(EngineUnavailable, match="r7"):
        await engine.warmup()


async def test_warmup_against_a_closed_port_is_unavailable() -> None:
    eng = OpenAIEngine(replica_id="r3", base_url=f"http://127.0.0.1:{free_port()}", model="m")
    try:
        with pytest.raises(EngineUnavailable, match="r3"):
            await eng.warmup()
    finally:
        await eng.aclose()


async def test_identity_and_protocol(engine: OpenAIEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.name == "openai"
    assert engine.version == "openai:m"


def test_build_engine_makes_an_openai_engine() -> None:
    replica = ReplicaConfig(
        replica_id="r9",
        engine="openai",
        base_url="http://llm.test:8080/v1",
        model="smollm2",
        api_key="k",
        request_timeout_ms=1000,
    )
    engine = build_engine(replica)
    assert isinstance(engine, OpenAIEngine)
    assert engine.version == "openai:smollm2"
    assert engine.completions_url == "http://llm.test:8080/v1/completions"


class RecordingTransport(httpx.MockTransport):
    def __init__(self) -> None:
        super().__init__(self._handle)
        self.closed = 0
        self.requests = 0

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(200, json={"object": "list", "data": []})

    async def aclose(self) -> None:
        self.closed += 1


async def test_one_client_is_shared_and_closed_by_aclose() -> None:
    transport = RecordingTransport()
    eng = OpenAIEngine(replica_id="r1", base_url=BASE, model="m", transport=transport)

    await eng.warmup()
    await eng.warmup()
    await eng.aclose()
    await eng.aclose()  # idempotent

    assert transport.requests == 2
    assert transport.closed == 1
    with pytest.raises(EngineUnavailable, match="closed"):
        await eng.warmup()
    with pytest.raises(EngineUnavailable, match="closed"):
        await collect(eng, make_request())


async def test_aclose_without_use_opens_nothing() -> None:
    transport = RecordingTransport()
    eng = OpenAIEngine(replica_id="r1", base_url=BASE, model="m", transport=transport)

    await eng.aclose()

    assert transport.closed == 0

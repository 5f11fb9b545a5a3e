"""The OrchQueue v1 client against a fake server (httpx.MockTransport) that answers per the spec.

Every test runs twice, once through :class:`OrchClient` and once through
:class:`AsyncOrchClient`, via the small :class:`Api` facade: the two clients share
their request building and decoding, so the same expectations must hold for both.

Spec: none. The spec binds servers; this is the client's own contract, tested
against a fake server.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from orchestrator.client import (
    AsyncOrchClient,
    OrchClient,
    OrchClientError,
    OrchError,
    OrchProtocolError,
    OrchUnreachable,
    StreamEvent,
    StreamGapError,
    StreamInterruptedError,
)
from orchestrator.client import aio as client_aio
from orchestrator.client import sync as client_sync
from orchestrator.schemas import (
    EndData,
    ErrorData,
    StartedData,
    TokenData,
)

BASE = "http://orch.test:8080"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------- fake server pieces


SESSION = {
    "session_id": "s-1",
    "ttl_seconds": 600,
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": "2025-01-01T00:10:00Z",
    "metadata": {},
}
SESSION_INFO = {
    **SESSION,
    "ttl_remaining_ms": 599_000,
    "tasks": {"queued": 1, "running": 0, "terminal": 2},
}
ADMITTED = {
    "task_id": "t-1",
    "session_id": "s-1",
    "state": "queued",
    "priority": "interactive",
    "pool": "default",
    "queue_position": 0,
    "seed": 42,
    "stream_url": "/v1/tasks/t-1/stream",
}
TASK = {
    "task_id": "t-1",
    "session_id": "s-1",
    "state": "completed",
    "priority": "interactive",
    "pool": "default",
    "max_tokens": 4,
    "params": {
        "seed": 42,
        "sampler_profile_version": "v1",
        "determinism": "best_effort",
        "temperature": 1.0,
        "top_p": 1.0,
    },
    "replica_id": "r1",
    "engine": "mock",
    "engine_version": "mock-1",
    "tokens_out": 4,
    "finish_reason": "length",
    "error": None,
    "attempts": [
        {
            "attempt": 1,
            "replica_id": "r1",
            "state": "completed",
            "error_kind": None,
            "started_at": "2025-01-01T00:00:01Z",
            "finished_at": "2025-01-01T00:00:02Z",
        }
    ],
    "created_at": "2025-01-01T00:00:00Z",
    "started_at": "2025-01-01T00:00:01Z",
    "finished_at": "2025-01-01T00:00:02Z",
}
POOL = {
    "pool_id": "default",
    "ready": True,
    "queue_capacity": 1024,
    "queue_depth": {"interactive": 0, "batch": 0},
    "overflow_policy": "reject",
    "max_attempts": 2,
    "batch_share_every": 4,
    "decode_timeout_ms": 30000,
    "replicas": [
        {
            "replica_id": "r1",
            "engine": "mock",
            "engine_version": "mock-1",
            "state": "ready",
            "in_flight": 0,
            "slots": 4,
        }
    ],
}
STARTED = {
    "task_id": "t-1",
    "replica_id": "r1",
    "engine": "mock",
    "engine_version": "mock-1",
    "seed": 42,
    "sampler_profile_version": "v1",
}
WORDS = ["Hello", ",", " world", "!"]


def envelope(kind: str, message: str, retriable: bool, request_id: str | None = "req-1") -> Any:
    return {
        "error": {
            "kind": kind,
            "message": message,
            "retriable": retriable,
            "request_id": request_id,
        }
    }


def sse(event_id: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def task_events(n_tokens: int = 4, *, error: bool = False) -> list[str]:
    """The whole stream of task t-1 as SSE blocks, ids 1..n (a list index i holds id i+1)."""
    blocks = [sse(1, "started", STARTED)]
    for i in range(n_tokens):
        blocks.append(sse(i + 2, "token", {"index": i, "text": WORDS[i % 4], "token_id": 100 + i}))
    last = n_tokens + 2
    if error:
        blocks.append(
            sse(
                last,
                "error",
                {"kind": "WORKER_RESET", "message": "replica died", "retriable": True},
            )
        )
    else:
        blocks.append(
            sse(last, "end", {"tokens_out": n_tokens, "finish_reason": "length", "seed": 42})
        )
    return blocks


def since(blocks: Sequence[str], last_id: int) -> list[str]:
    """The blocks a server replays for ``Last-Event-ID: last_id``."""
    return list(blocks[last_id:])


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given chunks, optionally cut by a transport error."""

    def __init__(self, chunks: Sequence[str | bytes], cut: Exception | None = None) -> None:
        self.chunks = [c.encode() if isinstance(c, str) else c for c in chunks]
        self.cut = cut

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.cut is not None:
            raise self.cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.cut is not None:
            raise self.cut


def event_stream(chunks: Sequence[str | bytes], cut: Exception | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        stream=Chunks(chunks, cut),
    )


Reply = httpx.Response | Exception


class Script:
    """Answers requests in order from a list; an extra request fails the test."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.replies, f"unexpected extra request {request.method} {request.url}"
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class Api:
    """One client (sync or async) over a MockTransport, driven from async tests."""

    def __init__(self, mode: str, handler: Handler, **kwargs: Any) -> None:
        self.mode = mode
        self.requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        transport = httpx.MockTransport(record)
        base = kwargs.pop("base_url", BASE)
        self.client: OrchClient | AsyncOrchClient
        if mode == "sync":
            self.client = OrchClient(base, transport=transport, **kwargs)
        else:
            self.client = AsyncOrchClient(base, transport=transport, **kwargs)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def events(self, task_id: str, **kwargs: Any) -> list[StreamEvent]:
        if isinstance(self.client, OrchClient):
            return list(self.client.stream(task_id, **kwargs))
        return [event async for event in self.client.stream(task_id, **kwargs)]

    async def close(self) -> None:
        if isinstance(self.client, OrchClient):
            self.client.close()
        else:
            await self.client.aclose()

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_api(mode: str) -> Callable[..., Api]:
    def make(handler: Handler, **kwargs: Any) -> Api:
        return Api(mode, handler, **kwargs)

    return make


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record reconnect delays instead of sleeping."""
    delays: list[float] = []

    async def asleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(client_sync, "_sleep", delays.append)
    monkeypatch.setattr(client_aio, "_asleep", asleep)
    return delays


def ok(payload: Any, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=payload)


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------- requests and decoding


async def test_create_session_sends_bearer_headers_and_decodes(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(ok(SESSION, 201), token="s3cret", headers={"X-Request-Id": "mine"})
    created = await api.call("create_session")
    assert created.session_id == "s-1"
    assert created.ttl_seconds == 600
    request = api.last
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/sessions"
    assert body(request) == {"ttl_seconds": 600}
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["X-Request-Id"] == "mine"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("orchq-client/")


async def test_create_session_with_ttl_and_metadata(make_api: Callable[..., Api]) -> None:
    api = make_api(ok({**SESSION, "ttl_seconds": 30, "metadata": {"run": "a"}}, 201))
    created = await api.call("create_session", ttl_seconds=30, metadata={"run": "a"})
    assert created.metadata == {"run": "a"}
    assert body(api.last) == {"ttl_seconds": 30, "metadata": {"run": "a"}}
    assert "Authorization" not in api.last.headers


async def test_get_and_delete_session(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=SESSION_INFO)

    api = make_api(handler)
    info = await api.call("get_session", "s-1")
    assert info.ttl_remaining_ms == 599_000
    assert info.tasks.terminal == 2
    assert (api.last.method, api.last.url.path) == ("GET", "/v1/sessions/s-1")
    assert await api.call("delete_session", "s-1") is None
    assert (api.last.method, api.last.url.path) == ("DELETE", "/v1/sessions/s-1")
    assert api.last.content == b""


@pytest.mark.parametrize(
    ("opaque_id", "raw_segment"),
    [
        ("a/b", b"a%2Fb"),
        ("..", b"%2E%2E"),
        (".", b"%2E"),
        ("x y?#%", b"x%20y%3F%23%25"),
        ("é", b"%C3%A9"),
        ("v1.2", b"v1.2"),
    ],
)
async def test_ids_are_quoted_as_one_path_segment(
    make_api: Callable[..., Api], opaque_id: str, raw_segment: bytes
) -> None:
    api = make_api(ok(TASK))
    await api.call("get_task", opaque_id)
    assert api.last.url.raw_path == b"/v1/tasks/" + raw_segment


async def test_empty_id_is_refused_before_sending(make_api: Callable[..., Api]) -> None:
    api = make_api(ok(TASK))
    with pytest.raises(ValueError, match="task_id must be a non-empty string"):
        await api.call("get_task", "")
    assert api.requests == []


async def test_base_url_path_prefix_is_kept(make_api: Callable[..., Api]) -> None:
    api = make_api(ok(SESSION_INFO), base_url="https://gw.test/orch/")
    await api.call("get_session", "s-1")
    assert str(api.last.url) == "https://gw.test/orch/v1/sessions/s-1"


async def test_submit_task_defaults_send_full_params_without_seed(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(ok(ADMITTED, 202))
    admitted = await api.call("submit_task", "s-1", "Say hi")
    assert admitted.task_id == "t-1"
    assert admitted.seed == 42
    assert (api.last.method, api.last.url.path) == ("POST", "/v1/tasks")
    assert body(api.last) == {
        "session_id": "s-1",
        "prompt": "Say hi",
        "priority": "interactive",
        "pool": "default",
        "max_tokens": 64,
        "params": {
            "sampler_profile_version": "v1",
            "determinism": "best_effort",
            "temperature": 1.0,
            "top_p": 1.0,
        },
    }


async def test_submit_task_with_every_option(make_api: Callable[..., Api]) -> None:
    api = make_api(ok({**ADMITTED, "priority": "batch", "pool": "gpu", "seed": 7}, 202))
    admitted = await api.call(
        "submit_task",
        "s-1",
        "p",
        priority="batch",
        pool="gpu",
        max_tokens=8,
        seed=7,
        determinism="strict",
        sampler_profile_version="v2",
        temperature=0.0,
        top_p=0.5,
    )
    assert admitted.priority == "batch"
    assert body(api.last) == {
        "session_id": "s-1",
        "prompt": "p",
        "priority": "batch",
        "pool": "gpu",
        "max_tokens": 8,
        "params": {
            "seed": 7,
            "sampler_profile_version": "v2",
            "determinism": "strict",
            "temperature": 0.0,
            "top_p": 0.5,
        },
    }


async def test_get_and_cancel_task(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(200, json={**TASK, "state": "cancelled"})
        return httpx.Response(200, json=TASK)

    api = make_api(handler)
    task = await api.call("get_task", "t-1")
    assert task.state == "completed"
    assert task.attempts[0].replica_id == "r1"
    assert task.params.seed == 42
    assert (api.last.method, api.last.url.path) == ("GET", "/v1/tasks/t-1")
    cancelled = await api.call("cancel_task", "t-1")
    assert cancelled.state == "cancelled"
    assert (api.last.method, api.last.url.path) == ("DELETE", "/v1/tasks/t-1")


async def test_pools(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/pools":
            return httpx.Response(200, json={"pools": [POOL, {**POOL, "pool_id": "b"}]})
        return httpx.Response(200, json=POOL)

    api = make_api(handler)
    pools = await api.call("list_pools")
    assert [p.pool_id for p in pools] == ["default", "b"]
    assert pools[0].replicas[0].state == "ready"
    assert (api.last.method, api.last.url.path) == ("GET", "/v1/pools")
    pool = await api.call("get_pool", "default")
    assert pool.queue_depth.interactive == 0
    assert api.last.url.path == "/v1/pools/default"


async def test_routing(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(200, json=body(request))
        return httpx.Response(200, json={"fallback_mode": "aggressive_fallback"})

    api = make_api(handler)
    assert (await api.call("get_routing")).fallback_mode == "aggressive_fallback"
    assert (api.last.method, api.last.url.path) == ("GET", "/v1/admin/routing")
    routing = await api.call("set_routing", "intelligent_pacing")
    assert routing.fallback_mode == "intelligent_pacing"
    assert (api.last.method, api.last.url.path) == ("PUT", "/v1/admin/routing")
    assert body(api.last) == {"fallback_mode": "intelligent_pacing"}


async def test_health_ready_and_metrics(make_api: Callable[..., Api]) -> None:
    metrics = (
        "# HELP orchq_build_info Build.\n"
        "# TYPE orchq_build_info gauge\n"
        'orchq_build_info{version="0.1.0"} 1.0\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"status": "ok"})
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"status": "ready", "pools": {"default": True}})
        assert request.url.path == "/metrics"
        return httpx.Response(200, text=metrics, headers={"content-type": "text/plain"})

    api = make_api(handler)
    assert (await api.call("health")).status == "ok"
    assert (await api.call("ready")).pools == {"default": True}
    assert await api.call("metrics_text") == metrics
    assert api.last.headers["Accept"] == "text/plain"


# ---------------------------------------------------------------- errors


async def test_error_envelope_with_backpressure_headers(make_api: Callable[..., Api]) -> None:
    api = make_api(
        lambda request: httpx.Response(
            429,
            json=envelope("ADMISSION_REJECT", "queue of pool 'default' is full", True),
            headers={"Retry-After": "2", "X-Backoff-Ms": "1234", "X-Request-Id": "req-1"},
        )
    )
    with pytest.raises(OrchError) as info:
        await api.call("submit_task", "s-1", "p")
    err = info.value
    assert type(err) is OrchError
    assert err.status == 429
    assert err.kind == "ADMISSION_REJECT"
    assert err.message == "queue of pool 'default' is full"
    assert err.retriable is True
    assert err.request_id == "req-1"
    assert err.retry_after == 2
    assert err.backoff_ms == 1234
    assert err.body == envelope("ADMISSION_REJECT", "queue of pool 'default' is full", True)
    assert str(err) == "ADMISSION_REJECT (HTTP 429): queue of pool 'default' is full"


async def test_error_without_backpressure_headers(make_api: Callable[..., Api]) -> None:
    api = make_api(
        lambda request: httpx.Response(
            404,
            json=envelope("NOT_FOUND", "no task 'x'", False, request_id=None),
            headers={"X-Request-Id": "from-header"},
        )
    )
    with pytest.raises(OrchError) as info:
        await api.call("get_task", "x")
    err = info.value
    assert (err.status, err.kind, err.retriable) == (404, "NOT_FOUND", False)
    assert err.request_id == "from-header"
    assert err.retry_after is None
    assert err.backoff_ms is None


async def test_ready_raises_on_503(make_api: Callable[..., Api]) -> None:
    api = make_api(
        lambda request: httpx.Response(
            503,
            json=envelope("POOL_UNREADY", "replicas warming", True),
            headers={"Retry-After": "1", "X-Backoff-Ms": "800"},
        )
    )
    with pytest.raises(OrchError) as info:
        await api.call("ready")
    assert (info.value.kind, info.value.retry_after, info.value.backoff_ms) == (
        "POOL_UNREADY",
        1,
        800,
    )


async def test_non_envelope_error_is_a_protocol_error(make_api: Callable[..., Api]) -> None:
    api = make_api(
        lambda request: httpx.Response(
            502, text="<html>Bad Gateway</html>", headers={"Retry-After": "5"}
        )
    )
    with pytest.raises(OrchError) as info:
        await api.call("get_task", "t-1")
    err = info.value
    assert isinstance(err, OrchProtocolError)
    assert err.kind == "PROTOCOL_ERROR"
    assert err.status == 502
    assert "not an OrchQueue error envelope" in err.message
    assert "502" in err.message
    assert "GET /v1/tasks/{id}" in err.message
    assert err.body == "<html>Bad Gateway</html>"
    assert err.retriable is True
    assert err.retry_after == 5


async def test_json_non_envelope_error_keeps_the_json_body(make_api: Callable[..., Api]) -> None:
    api = make_api(lambda request: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(OrchProtocolError) as info:
        await api.call("get_pool", "nope")
    assert info.value.body == {"detail": "Not Found"}
    assert info.value.status == 404
    assert info.value.retriable is False


async def test_response_not_matching_schema(make_api: Callable[..., Api]) -> None:
    broken = {k: v for k, v in TASK.items() if k != "tokens_out"}
    api = make_api(ok(broken))
    with pytest.raises(OrchProtocolError) as info:
        await api.call("get_task", "t-1")
    err = info.value
    assert err.endpoint == "GET /v1/tasks/{id}"
    assert "GET /v1/tasks/{id}" in err.message
    assert "Task" in err.message
    assert "tokens_out" in err.message
    assert err.status == 200


async def test_response_not_json(make_api: Callable[..., Api]) -> None:
    api = make_api(lambda request: httpx.Response(200, text="hello"))
    with pytest.raises(OrchProtocolError, match="not JSON"):
        await api.call("health")


async def test_unreachable(make_api: Callable[..., Api]) -> None:
    api = make_api(Script(httpx.ConnectError("[Errno 111] Connection refused")))
    with pytest.raises(OrchUnreachable) as info:
        await api.call("health")
    assert str(info.value) == (
        f"cannot reach orchestrator at {BASE}: [Errno 111] Connection refused"
    )
    assert not isinstance(info.value, OrchError)
    assert isinstance(info.value, OrchClientError)


async def test_unreachable_stream(make_api: Callable[..., Api], sleeps: list[float]) -> None:
    api = make_api(Script(httpx.ConnectError("refused")))
    with pytest.raises(OrchUnreachable, match="cannot reach orchestrator"):
        await api.events("t-1")
    assert sleeps == []


# ---------------------------------------------------------------- stream


async def test_stream_parses_retry_pings_and_many_events_in_one_chunk(
    make_api: Callable[..., Api],
) -> None:
    blocks = task_events()
    payload = "retry: 500\n\n: ping\n\n" + blocks[0] + ": ping\n\n" + "".join(blocks[1:])
    api = make_api(Script(event_stream([payload])), token="tok")
    events = await api.events("t-1")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.event for e in events] == ["started", "token", "token", "token", "token", "end"]
    assert isinstance(events[0].parsed, StartedData)
    assert isinstance(events[1].parsed, TokenData)
    assert events[1].data == {"index": 0, "text": "Hello", "token_id": 100}
    assert isinstance(events[-1].parsed, EndData)
    request = api.last
    assert (request.method, request.url.path) == ("GET", "/v1/tasks/t-1/stream")
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == "Bearer tok"
    assert "Last-Event-ID" not in request.headers


async def test_stream_handles_chunks_split_anywhere(make_api: Callable[..., Api]) -> None:
    text = ("retry: 10\r\n\r\n" + "".join(task_events())).encode()
    api = make_api(Script(event_stream([text[i : i + 3] for i in range(0, len(text), 3)])))
    events = await api.events("t-1")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert "".join(e.data["text"] for e in events if e.event == "token") == "Hello, world!"


async def test_stream_stops_at_end(make_api: Callable[..., Api]) -> None:
    blocks = task_events(1)
    after_end = sse(len(blocks) + 1, "token", {"index": 9, "text": "late", "token_id": 1})
    api = make_api(Script(event_stream([*blocks, after_end], cut=httpx.ReadError("never read"))))
    events = await api.events("t-1")
    assert events[-1].event == "end"
    assert [e.id for e in events] == [1, 2, 3]


async def test_stream_stops_at_error(make_api: Callable[..., Api]) -> None:
    blocks = task_events(2, error=True)
    api = make_api(Script(event_stream(blocks)))
    events = await api.events("t-1")
    assert [e.event for e in events] == ["started", "token", "token", "error"]
    error = events[-1].parsed
    assert isinstance(error, ErrorData)
    assert error.kind == "WORKER_RESET"


async def test_collect_stream(make_api: Callable[..., Api]) -> None:
    api = make_api(Script(event_stream(task_events())))
    result = await api.call("collect_stream", "t-1")
    assert result.ok
    assert result.text == "Hello, world!"
    assert result.texts == WORDS
    assert [t.index for t in result.tokens] == [0, 1, 2, 3]
    assert result.started is not None
    assert result.started.replica_id == "r1"
    assert result.end is not None
    assert result.end.finish_reason == "length"
    assert result.error is None
    assert result.last_event_id == 6
    assert len(result.events) == 6


async def test_collect_stream_with_error(make_api: Callable[..., Api]) -> None:
    api = make_api(Script(event_stream(task_events(1, error=True))))
    result = await api.call("collect_stream", "t-1")
    assert not result.ok
    assert result.end is None
    assert result.error is not None
    assert result.error.kind == "WORKER_RESET"
    assert result.texts == ["Hello"]


@pytest.mark.parametrize(
    "cut",
    [httpx.ReadError("connection reset"), httpx.RemoteProtocolError("peer closed"), None],
    ids=["read-error", "remote-protocol-error", "clean-eof"],
)
async def test_stream_resumes_with_last_event_id_without_duplicates(
    make_api: Callable[..., Api], sleeps: list[float], cut: Exception | None
) -> None:
    blocks = task_events()
    # The first connection is cut in the middle of event 3; the server then
    # replays from event 2 (one too early) so the client must drop the duplicate.
    api = make_api(
        Script(
            event_stream(["retry: 7\n\n", *blocks[:2], blocks[2][:10]], cut=cut),
            event_stream(["retry: 7\n\n", *since(blocks, 1)]),
        )
    )
    events = await api.events("t-1")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert len(api.requests) == 2
    assert "Last-Event-ID" not in api.requests[0].headers
    assert api.requests[1].headers["Last-Event-ID"] == "2"
    assert sleeps == [0.007]


async def test_stream_resume_waits_at_most_one_second(
    make_api: Callable[..., Api], sleeps: list[float]
) -> None:
    blocks = task_events()
    api = make_api(
        Script(
            event_stream(["retry: 5000\n\n", blocks[0]], cut=httpx.ReadError("reset")),
            event_stream(since(blocks, 1)),
        )
    )
    assert len(await api.events("t-1")) == 6
    assert sleeps == [1.0]


async def test_stream_reconnect_that_cannot_connect_counts_as_an_attempt(
    make_api: Callable[..., Api], sleeps: list[float]
) -> None:
    blocks = task_events()
    api = make_api(
        Script(
            event_stream(["retry: 1\n\n", *blocks[:3]], cut=httpx.ReadError("reset")),
            httpx.ConnectError("refused"),
            event_stream(since(blocks, 3)),
        )
    )
    events = await api.events("t-1")
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]
    assert [r.headers["Last-Event-ID"] for r in api.requests[1:]] == ["3", "3"]
    assert sleeps == [0.001, 0.001]


async def test_stream_starts_after_given_last_event_id(make_api: Callable[..., Api]) -> None:
    blocks = task_events()
    api = make_api(Script(event_stream(since(blocks, 4))))
    events = await api.events("t-1", last_event_id=4)
    assert [e.id for e in events] == [5, 6]
    assert api.last.headers["Last-Event-ID"] == "4"


async def test_stream_gap_after_resume(make_api: Callable[..., Api], sleeps: list[float]) -> None:
    blocks = task_events()
    api = make_api(
        Script(
            event_stream(["retry: 1\n\n", *blocks[:2]], cut=httpx.ReadError("reset")),
            event_stream(since(blocks, 3)),  # event 3 is missing
        )
    )
    with pytest.raises(StreamGapError) as info:
        await api.events("t-1")
    err = info.value
    assert (err.expected, err.got, err.task_id) == (3, 4, "t-1")
    assert err.kind == "PROTOCOL_ERROR"
    assert isinstance(err, OrchError)


async def test_stream_gap_within_a_connection(make_api: Callable[..., Api]) -> None:
    blocks = task_events()
    api = make_api(Script(event_stream([blocks[0], *blocks[2:]])))
    with pytest.raises(StreamGapError, match="jumped to event id 3, expected 2"):
        await api.events("t-1")


async def test_stream_gives_up_after_max_reconnects(
    make_api: Callable[..., Api], sleeps: list[float]
) -> None:
    blocks = task_events()
    api = make_api(
        Script(
            event_stream(["retry: 1\n\n", *blocks[:2]], cut=httpx.ReadError("reset")),
            event_stream([], cut=httpx.ReadError("reset")),
            event_stream([], cut=httpx.ReadError("reset")),
        )
    )
    with pytest.raises(StreamInterruptedError) as info:
        await api.events("t-1", max_reconnects=2)
    err = info.value
    assert err.last_event_id == 2
    assert err.reconnects == 2
    assert "reset" in str(err)
    assert len(api.requests) == 3
    assert len(sleeps) == 2


async def test_reconnect_budget_resets_when_events_arrive(
    make_api: Callable[..., Api], sleeps: list[float]
) -> None:
    blocks = task_events()
    cut = httpx.ReadError("reset")
    api = make_api(
        Script(
            event_stream(["retry: 1\n\n", blocks[0]], cut=cut),
            event_stream([blocks[1]], cut=cut),
            event_stream([blocks[2]], cut=cut),
            event_stream(since(blocks, 3)),
        )
    )
    events = await api.events("t-1", max_reconnects=1)
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6]


async def test_stream_without_reconnect_raises_on_drop(
    make_api: Callable[..., Api], sleeps: list[float]
) -> None:
    blocks = task_events()
    api = make_api(Script(event_stream(blocks[:2])))
    with pytest.raises(StreamInterruptedError, match="without an end or error event") as info:
        await api.events("t-1", reconnect=False)
    assert info.value.last_event_id == 2
    assert info.value.reconnects == 0
    assert sleeps == []


async def test_stream_error_status_raises_orch_error(make_api: Callable[..., Api]) -> None:
    api = make_api(Script(httpx.Response(404, json=envelope("NOT_FOUND", "no task 'nope'", False))))
    with pytest.raises(OrchError) as info:
        await api.events("nope")
    assert (info.value.status, info.value.kind) == (404, "NOT_FOUND")


async def test_stream_wrong_content_type(make_api: Callable[..., Api]) -> None:
    api = make_api(Script(httpx.Response(200, json=TASK)))
    with pytest.raises(OrchProtocolError, match="text/event-stream"):
        await api.events("t-1")


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        (sse(1, "banana", {}), "unknown event type 'banana'"),
        ("event: started\ndata: {}\n\n", "no integer id"),
        ("id: 1\nevent: started\ndata: not json\n\n", "not JSON"),
        ("id: 1\nevent: started\ndata: [1]\n\n", "not a JSON object"),
        (sse(1, "started", {"task_id": "t-1"}), "does not match the schema"),
    ],
)
async def test_stream_refuses_malformed_events(
    make_api: Callable[..., Api], block: str, problem: str
) -> None:
    api = make_api(Script(event_stream([block])))
    with pytest.raises(OrchProtocolError, match=problem):
        await api.events("t-1")


# ---------------------------------------------------------------- values and lifecycle


def test_stream_event_is_frozen_and_parses() -> None:
    event = StreamEvent(2, "token", {"index": 0, "text": "a", "token_id": 5})
    parsed = event.parsed
    assert isinstance(parsed, TokenData)
    assert parsed.text == "a"
    assert not event.terminal
    assert StreamEvent(3, "end", {}).terminal
    with pytest.raises(AttributeError):
        event.id = 3  # type: ignore[misc]


def test_sync_context_manager_and_borrowed_client() -> None:
    transport = httpx.MockTransport(ok({"status": "ok"}))
    with OrchClient(BASE, transport=transport) as client:
        assert client.health().status == "ok"
    assert client._http.is_closed

    borrowed = httpx.Client(transport=transport)
    with OrchClient(BASE, http=borrowed, token="t") as client:
        assert client.health().status == "ok"
    assert not borrowed.is_closed
    borrowed.close()


async def test_async_context_manager_and_borrowed_client() -> None:
    transport = httpx.MockTransport(ok({"status": "ok"}))
    async with AsyncOrchClient(BASE, transport=transport) as client:
        assert (await client.health()).status == "ok"
    assert client._http.is_closed

    borrowed = httpx.AsyncClient(transport=transport)
    async with AsyncOrchClient(BASE, http=borrowed) as client:
        assert (await client.health()).status == "ok"
    assert not borrowed.is_closed
    await borrowed.aclose()


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        OrchClient("orch.test:8080")
    transport = httpx.MockTransport(ok({}))
    with pytest.raises(ValueError, match="not both"):
        OrchClient(BASE, transport=transport, http=httpx.Client())
    assert repr(OrchClient(BASE + "/", transport=transport)) == f"OrchClient({BASE!r})"

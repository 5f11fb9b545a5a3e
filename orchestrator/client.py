"""Typed HTTP client for OrchQueue v1: :class:`OrchClient` (sync) and :class:`AsyncOrchClient`.

Both clients speak exactly the contract in API.md and decode every answer into
the wire models of :mod:`orchestrator.schemas`, so a server that drifts from the
contract fails loudly here (:class:`OrchProtocolError`) instead of somewhere
downstream. Requests are *not* validated client-side: the server is the only
authority on what is valid, and the harness needs to send it invalid input.

Request building, response decoding and the stream's resume bookkeeping live in
module-level helpers shared by both clients; the two classes differ only in how
they do I/O.

Exceptions, all subclasses of :class:`OrchClientError`:

- :class:`OrchError`: the server answered with a non-2xx status.
- :class:`OrchProtocolError` (an :class:`OrchError` of kind ``PROTOCOL_ERROR``):
  the answer did not follow the contract (not an error envelope, not JSON, not
  the schema, a gap in a stream); :class:`StreamGapError` is one of these.
- :class:`OrchUnreachable`: no answer at all (connection refused, timeout, ...).
- :class:`StreamInterruptedError`: a stream broke and could not be resumed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast
from urllib.parse import quote

import anyio
import httpx
from httpx_sse import EventSource, ServerSentEvent
from pydantic import BaseModel, ValidationError

from orchestrator import __version__
from orchestrator.numerals import ascii_int
from orchestrator.schemas import (
    STREAM_EVENT_MODELS,
    EndData,
    ErrorData,
    ErrorEnvelope,
    Health,
    Pool,
    PoolList,
    Readiness,
    Routing,
    SessionCreated,
    SessionInfo,
    StartedData,
    Task,
    TaskAdmitted,
    TokenData,
)
from orchestrator.vocabulary import Determinism, FallbackMode, Priority

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncOrchClient",
    "EventData",
    "OrchClient",
    "OrchClientError",
    "OrchError",
    "OrchProtocolError",
    "OrchUnreachable",
    "StreamEvent",
    "StreamGapError",
    "StreamInterruptedError",
    "StreamResult",
]

DEFAULT_TIMEOUT = 30.0
PROTOCOL_ERROR = "PROTOCOL_ERROR"
# Longest pause before a stream reconnect, whatever the server's ``retry:`` says:
# a resume is cheap for the server (it replays persisted events) and a CLI user
# watching tokens should not stare at a frozen screen.
MAX_RECONNECT_DELAY_MS = 1000
USER_AGENT = f"orchq-client/{__version__}"
# Statuses a non-OrchQueue answer (a proxy, a load balancer) is worth retrying on.
_RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})

EventData = StartedData | TokenData | EndData | ErrorData
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Indirections so tests can observe reconnect delays without sleeping.
_sleep: Callable[[float], None] = time.sleep
_asleep: Callable[[float], Awaitable[None]] = anyio.sleep


# ---------------------------------------------------------------- exceptions


class OrchClientError(Exception):
    """Base of every exception this module raises, so a CLI can catch them in one place."""


class OrchError(OrchClientError):
    """The orchestrator answered with a non-2xx status.

    ``kind`` is the envelope's error kind (see :class:`orchestrator.errors.ErrorKind`).
    ``retry_after`` (seconds) and ``backoff_ms`` come from the ``Retry-After`` and
    ``X-Backoff-Ms`` headers every 429/503 carries; ``backoff_ms`` is the jittered
    value a polite client waits.
    """

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        retriable: bool = False,
        request_id: str | None = None,
        retry_after: int | None = None,
        backoff_ms: int | None = None,
        body: dict[str, Any] | str = "",
    ) -> None:
        super().__init__(f"{kind} (HTTP {status}): {message}")
        self.status = status
        self.kind = kind
        self.message = message
        self.retriable = retriable
        self.request_id = request_id
        self.retry_after = retry_after
        self.backoff_ms = backoff_ms
        self.body = body


class OrchProtocolError(OrchError):
    """The answer broke the contract: not an error envelope, not JSON, or not the schema.

    ``endpoint`` names the operation (``"GET /v1/tasks/{id}"``); ``status`` is the
    HTTP status the server did send.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        endpoint: str,
        retriable: bool = False,
        request_id: str | None = None,
        retry_after: int | None = None,
        backoff_ms: int | None = None,
        body: dict[str, Any] | str = "",
    ) -> None:
        super().__init__(
            status,
            PROTOCOL_ERROR,
            message,
            retriable=retriable,
            request_id=request_id,
            retry_after=retry_after,
            backoff_ms=backoff_ms,
            body=body,
        )
        self.endpoint = endpoint


class StreamGapError(OrchProtocolError):
    """A stream skipped event ids: the contract promises ``1, 2, 3 ...`` with no gap."""

    def __init__(self, task_id: str, expected: int, got: int) -> None:
        super().__init__(
            200,
            f"stream of task {task_id!r} jumped to event id {got}, expected {expected}",
            endpoint=_STREAM_ENDPOINT,
        )
        self.task_id = task_id
        self.expected = expected
        self.got = got


class OrchUnreachable(OrchClientError):
    """No HTTP answer at all: connection refused, DNS failure, timeout, connection reset."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach orchestrator at {url}: {reason}")
        self.url = url
        self.reason = reason


class StreamInterruptedError(OrchClientError):
    """A stream ended without ``end``/``error`` and could not be resumed.

    ``last_event_id`` is the last id yielded: pass it as ``last_event_id=`` to
    :meth:`OrchClient.stream` to pick up where this one stopped.
    """

    def __init__(
        self, task_id: str, last_event_id: int | None, reconnects: int, reason: str
    ) -> None:
        after = f"after event {last_event_id}" if last_event_id is not None else "before any event"
        super().__init__(
            f"stream of task {task_id!r} interrupted {after} "
            f"({reconnects} reconnect(s) tried): {reason}"
        )
        self.task_id = task_id
        self.last_event_id = last_event_id
        self.reconnects = reconnects
        self.reason = reason


# ---------------------------------------------------------------- stream values


@dataclass(frozen=True)
class StreamEvent:
    """One event of a task stream: ``started``, ``token``, ``end`` or ``error``."""

    id: int
    event: str
    data: dict[str, Any]

    @cached_property
    def parsed(self) -> EventData:
        """``data`` as its wire model (:data:`schemas.STREAM_EVENT_MODELS`); validated once."""
        model = STREAM_EVENT_MODELS.get(self.event)
        if model is None:
            raise ValueError(f"unknown stream event {self.event!r}")
        return cast(EventData, model.model_validate(self.data))

    @property
    def terminal(self) -> bool:
        """Whether this event closes the stream (``end`` or ``error``)."""
        return self.event in ("end", "error")


@dataclass(frozen=True)
class StreamResult:
    """A whole stream, gathered by ``collect_stream``: exactly one of ``end``/``error`` is set."""

    task_id: str
    started: StartedData | None
    tokens: list[TokenData]
    end: EndData | None
    error: ErrorData | None
    last_event_id: int | None
    events: list[StreamEvent] = field(repr=False)

    @property
    def texts(self) -> list[str]:
        return [token.text for token in self.tokens]

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def ok(self) -> bool:
        """True when the stream closed with ``end`` rather than ``error``."""
        return self.end is not None


# ---------------------------------------------------------------- shared helpers


def _segment(value: str, what: str) -> str:
    """Quote an opaque id as one path segment.

    ``/`` must not split the segment and ``.``/``..`` must not be collapsed as dot
    segments by URL normalisation, or the request would reach another route.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    quoted = quote(value, safe="")
    if quoted.strip(".") == "":
        quoted = quoted.replace(".", "%2E")
    return quoted


def _int_header(response: httpx.Response, name: str) -> int | None:
    raw = response.headers.get(name)
    return None if raw is None else ascii_int(raw, max_digits=30)


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "<root>"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _error_from_response(endpoint: str, response: httpx.Response) -> OrchError:
    """Turn a non-2xx answer (already read) into an :class:`OrchError`."""
    status = response.status_code
    retry_after = _int_header(response, "Retry-After")
    backoff_ms = _int_header(response, "X-Backoff-Ms")
    header_request_id = response.headers.get("X-Request-Id")
    text = response.text
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = None
    body: dict[str, Any] | str = payload if isinstance(payload, dict) else text
    try:
        envelope = ErrorEnvelope.model_validate(payload)
    except ValidationError:
        return OrchProtocolError(
            status,
            f"{endpoint} answered HTTP {status} with a body that is not an OrchQueue "
            f"error envelope: {_snippet(text) or '<empty>'}",
            endpoint=endpoint,
            retriable=status in _RETRIABLE_STATUSES,
            request_id=header_request_id,
            retry_after=retry_after,
            backoff_ms=backoff_ms,
            body=body,
        )
    error = envelope.error
    return OrchError(
        status,
        error.kind,
        error.message,
        retriable=error.retriable,
        request_id=error.request_id or header_request_id,
        retry_after=retry_after,
        backoff_ms=backoff_ms,
        body=body,
    )


def _json_of(endpoint: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise OrchProtocolError(
            response.status_code,
            f"{endpoint} answered HTTP {response.status_code} with a body that is not JSON: "
            f"{_snippet(response.text) or '<empty>'}",
            endpoint=endpoint,
            request_id=response.headers.get("X-Request-Id"),
            body=response.text,
        ) from None


def _validate(endpoint: str, response: httpx.Response, model: type[M]) -> M:
    payload = _json_of(endpoint, response)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise OrchProtocolError(
            response.status_code,
            f"{endpoint} answered a body that does not match {model.__name__}: "
            f"{_first_problem(exc)}",
            endpoint=endpoint,
            request_id=response.headers.get("X-Request-Id"),
            body=payload if isinstance(payload, dict) else response.text,
        ) from None


def _model(model: type[M]) -> Callable[[str, httpx.Response], M]:
    return lambda endpoint, response: _validate(endpoint, response, model)


def _decode_pools(endpoint: str, response: httpx.Response) -> list[Pool]:
    return _validate(endpoint, response, PoolList).pools


def _decode_nothing(endpoint: str, response: httpx.Response) -> None:
    return None


def _decode_text(endpoint: str, response: httpx.Response) -> str:
    return response.text


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request/response exchange, independent of sync or async I/O."""

    method: str
    route: str  # the path template, used to name the endpoint in errors
    path: str
    decode: Callable[[str, httpx.Response], T]
    json: dict[str, Any] | None = None
    accept: str = "application/json"

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.route}"

    def result(self, response: httpx.Response) -> T:
        """Decode a read response, raising :class:`OrchError` on any non-2xx."""
        if not response.is_success:
            raise _error_from_response(self.endpoint, response)
        return self.decode(self.endpoint, response)


def _create_session(ttl_seconds: int, metadata: Mapping[str, Any] | None) -> _Call[SessionCreated]:
    body: dict[str, Any] = {"ttl_seconds": ttl_seconds}
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return _Call("POST", "/v1/sessions", "/v1/sessions", _model(SessionCreated), body)


def _get_session(session_id: str) -> _Call[SessionInfo]:
    path = f"/v1/sessions/{_segment(session_id, 'session_id')}"
    return _Call("GET", "/v1/sessions/{id}", path, _model(SessionInfo))


def _delete_session(session_id: str) -> _Call[None]:
    path = f"/v1/sessions/{_segment(session_id, 'session_id')}"
    return _Call("DELETE", "/v1/sessions/{id}", path, _decode_nothing)


def _submit_task(
    session_id: str,
    prompt: str,
    *,
    priority: str,
    pool: str,
    max_tokens: int,
    seed: int | None,
    determinism: str,
    sampler_profile_version: str,
    temperature: float,
    top_p: float,
) -> _Call[TaskAdmitted]:
    params: dict[str, Any] = {} if seed is None else {"seed": seed}
    params |= {
        "sampler_profile_version": sampler_profile_version,
        "determinism": determinism,
        "temperature": temperature,
        "top_p": top_p,
    }
    body = {
        "session_id": session_id,
        "prompt": prompt,
        "priority": priority,
        "pool": pool,
        "max_tokens": max_tokens,
        "params": params,
    }
    return _Call("POST", "/v1/tasks", "/v1/tasks", _model(TaskAdmitted), body)


def _get_task(task_id: str) -> _Call[Task]:
    path = f"/v1/tasks/{_segment(task_id, 'task_id')}"
    return _Call("GET", "/v1/tasks/{id}", path, _model(Task))


def _cancel_task(task_id: str) -> _Call[Task]:
    path = f"/v1/tasks/{_segment(task_id, 'task_id')}"
    return _Call("DELETE", "/v1/tasks/{id}", path, _model(Task))


def _list_pools() -> _Call[list[Pool]]:
    return _Call("GET", "/v1/pools", "/v1/pools", _decode_pools)


def _get_pool(pool_id: str) -> _Call[Pool]:
    path = f"/v1/pools/{_segment(pool_id, 'pool_id')}"
    return _Call("GET", "/v1/pools/{id}", path, _model(Pool))


def _get_routing() -> _Call[Routing]:
    return _Call("GET", "/v1/admin/routing", "/v1/admin/routing", _model(Routing))


def _set_routing(mode: str) -> _Call[Routing]:
    body = {"fallback_mode": mode}
    return _Call("PUT", "/v1/admin/routing", "/v1/admin/routing", _model(Routing), body)


def _health() -> _Call[Health]:
    return _Call("GET", "/healthz", "/healthz", _model(Health))


def _ready() -> _Call[Readiness]:
    return _Call("GET", "/readyz", "/readyz", _model(Readiness))


def _metrics() -> _Call[str]:
    # Plain text exposition format, not OpenMetrics: it is what `promtool` checks.
    return _Call("GET", "/metrics", "/metrics", _decode_text, accept="text/plain")


_STREAM_ROUTE = "/v1/tasks/{id}/stream"
_STREAM_ENDPOINT = f"GET {_STREAM_ROUTE}"


def _stream_path(task_id: str) -> str:
    return f"/v1/tasks/{_segment(task_id, 'task_id')}/stream"


def _check_stream_response(response: httpx.Response) -> None:
    """Refuse a stream answer that is not a 2xx ``text/event-stream`` (body already read if not)."""
    if not response.is_success:
        raise _error_from_response(_STREAM_ENDPOINT, response)
    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if content_type != "text/event-stream":
        raise OrchProtocolError(
            response.status_code,
            f"{_STREAM_ENDPOINT} answered Content-Type {content_type!r}, "
            "expected 'text/event-stream'",
            endpoint=_STREAM_ENDPOINT,
            request_id=response.headers.get("X-Request-Id"),
        )


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# Failures of an established stream that a resume can repair.
_STREAM_DROPS: tuple[type[Exception], ...] = (httpx.TransportError, httpx.StreamClosed)


class _StreamState:
    """Resume bookkeeping of one logical stream, across its connections.

    It keeps the last id yielded (sent back as ``Last-Event-ID``), drops replayed
    duplicates, refuses gaps, remembers the server's ``retry:`` and counts the
    reconnects made in a row without a new event.
    """

    def __init__(
        self, task_id: str, last_event_id: int | None, reconnect: bool, max_reconnects: int
    ) -> None:
        if last_event_id is not None and last_event_id < 0:
            raise ValueError(f"last_event_id must be >= 0, got {last_event_id}")
        self.task_id = task_id
        self.path = _stream_path(task_id)
        self.last_id = last_event_id
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.retry_ms = MAX_RECONNECT_DELAY_MS
        self.connected = False  # an answer arrived at least once
        self.failures = 0  # reconnects in a row without a new event
        self.done = False

    def headers(self, base: Mapping[str, str]) -> dict[str, str]:
        headers = {**base, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        return headers

    def feed(self, sse: ServerSentEvent) -> StreamEvent | None:
        """Account for one decoded SSE block; return the event to yield, if any."""
        if sse.retry is not None and sse.retry >= 0:
            self.retry_ms = sse.retry
        if sse.event == "message" and sse.data == "":
            return None  # a block carrying only `retry:` (or `id:`)
        if sse.event not in STREAM_EVENT_MODELS:
            raise self._protocol(f"unknown event type {sse.event!r}")
        event_id = ascii_int(sse.id)
        if event_id is None:
            raise self._protocol(f"{sse.event!r} event has no integer id: {sse.id!r}")
        expected = (self.last_id or 0) + 1
        if event_id < expected:
            return None  # replayed after a resume: already yielded
        if event_id > expected:
            raise StreamGapError(self.task_id, expected, event_id)
        try:
            data = json.loads(sse.data)
        except ValueError:
            raise self._protocol(
                f"event {event_id} data is not JSON: {_snippet(sse.data)}"
            ) from None
        if not isinstance(data, dict):
            raise self._protocol(f"event {event_id} data is not a JSON object")
        event = StreamEvent(event_id, sse.event, data)
        try:
            _ = event.parsed  # validate now, so a bad event fails where it arrived
        except ValidationError as exc:
            raise self._protocol(
                f"{sse.event!r} event {event_id} does not match the schema: {_first_problem(exc)}"
            ) from None
        self.last_id = event_id
        self.failures = 0
        self.done = event.terminal
        return event

    def dropped(self, reason: str) -> float:
        """A connection ended early: return the delay before resuming, or raise if we may not."""
        if not self.reconnect or self.failures >= self.max_reconnects:
            raise StreamInterruptedError(self.task_id, self.last_id, self.failures, reason)
        self.failures += 1
        return min(self.retry_ms, MAX_RECONNECT_DELAY_MS) / 1000

    def _protocol(self, message: str) -> OrchProtocolError:
        return OrchProtocolError(
            200, f"stream of task {self.task_id!r}: {message}", endpoint=_STREAM_ENDPOINT
        )


_EARLY_EOF = "the stream closed without an end or error event"


class _Collector:
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.events: list[StreamEvent] = []

    def add(self, event: StreamEvent) -> None:
        self.events.append(event)

    def result(self) -> StreamResult:
        parsed = [event.parsed for event in self.events]
        started = next((p for p in parsed if isinstance(p, StartedData)), None)
        end = next((p for p in parsed if isinstance(p, EndData)), None)
        error = next((p for p in parsed if isinstance(p, ErrorData)), None)
        return StreamResult(
            task_id=self.task_id,
            started=started,
            tokens=[p for p in parsed if isinstance(p, TokenData)],
            end=end,
            error=error,
            last_event_id=self.events[-1].id if self.events else None,
            events=list(self.events),
        )


def _base_url(base_url: str) -> str:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    return str(url).rstrip("/")


def _default_headers(token: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    merged = {"User-Agent": USER_AGENT}
    if token is not None:
        merged["Authorization"] = f"Bearer {token}"
    merged.update(headers or {})
    return merged


# ---------------------------------------------------------------- clients


class OrchClient:
    """Blocking client for one orchestrator.

    Use it as a context manager (or call :meth:`close`) to release connections.
    ``http`` lets tests and embedders supply their own :class:`httpx.Client`; it is
    then used as-is (its own timeout and transport) and left open on close. The
    base URL, token and headers are applied per request, so they work either way.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if http is not None and transport is not None:
            raise ValueError("pass either http= or transport=, not both")
        self._base_url = _base_url(base_url)
        self._headers = _default_headers(token, headers)
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.Client(timeout=timeout, transport=transport)
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (not an ``http=`` client supplied by the caller)."""
        if self._owns_http:
            self._http.close()

    def _call(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method,
                self._base_url + call.path,
                json=call.json,
                headers={**self._headers, "Accept": call.accept},
            )
        except httpx.TransportError as exc:
            raise OrchUnreachable(self._base_url, _reason(exc)) from exc
        return call.result(response)

    # -- sessions

    def create_session(
        self, ttl_seconds: int = 600, metadata: Mapping[str, Any] | None = None
    ) -> SessionCreated:
        """``POST /v1/sessions``; ``metadata`` is only sent when given."""
        return self._call(_create_session(ttl_seconds, metadata))

    def get_session(self, session_id: str) -> SessionInfo:
        """``GET /v1/sessions/{id}``; an expired session raises ``SESSION_EXPIRED`` (410)."""
        return self._call(_get_session(session_id))

    def delete_session(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{id}``: its queued and running tasks end ``cancelled``."""
        self._call(_delete_session(session_id))

    # -- tasks

    def submit_task(
        self,
        session_id: str,
        prompt: str,
        *,
        priority: Priority = "interactive",
        pool: str = "default",
        max_tokens: int = 64,
        seed: int | None = None,
        determinism: Determinism = "best_effort",
        sampler_profile_version: str = "v1",
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> TaskAdmitted:
        """``POST /v1/tasks``. The full ``params`` object is sent; ``seed`` only when set
        (without one the server picks it and returns it in ``TaskAdmitted.seed``)."""
        return self._call(
            _submit_task(
                session_id,
                prompt,
                priority=priority,
                pool=pool,
                max_tokens=max_tokens,
                seed=seed,
                determinism=determinism,
                sampler_profile_version=sampler_profile_version,
                temperature=temperature,
                top_p=top_p,
            )
        )

    def get_task(self, task_id: str) -> Task:
        """``GET /v1/tasks/{id}``."""
        return self._call(_get_task(task_id))

    def cancel_task(self, task_id: str) -> Task:
        """``DELETE /v1/tasks/{id}``; a task that already ended raises ``CONFLICT`` (409)."""
        return self._call(_cancel_task(task_id))

    # -- pools, routing, health, metrics

    def list_pools(self) -> list[Pool]:
        """``GET /v1/pools``, unwrapped from its ``{"pools": [...]}`` envelope."""
        return self._call(_list_pools())

    def get_pool(self, pool_id: str) -> Pool:
        """``GET /v1/pools/{id}``."""
        return self._call(_get_pool(pool_id))

    def get_routing(self) -> Routing:
        """``GET /v1/admin/routing``."""
        return self._call(_get_routing())

    def set_routing(self, mode: FallbackMode) -> Routing:
        """``PUT /v1/admin/routing``; the server persists the mode."""
        return self._call(_set_routing(mode))

    def health(self) -> Health:
        """``GET /healthz``: the process is up (not that it can serve)."""
        return self._call(_health())

    def ready(self) -> Readiness:
        """``GET /readyz``; raises :class:`OrchError` ``POOL_UNREADY`` (503) while warming."""
        return self._call(_ready())

    def metrics_text(self) -> str:
        """``GET /metrics``: the Prometheus text exposition, unparsed."""
        return self._call(_metrics())

    # -- stream

    def stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> Generator[StreamEvent, None, None]:
        """Yield a task's events in id order, stopping after the first ``end`` or ``error``.

        A dropped connection (or one closed before ``end``/``error``) is resumed with
        ``Last-Event-ID`` after the server's ``retry:`` delay (at most 1 s), up to
        ``max_reconnects`` times in a row without a new event; replayed events are
        skipped, a gap raises :class:`StreamGapError`, and running out of reconnects
        raises :class:`StreamInterruptedError`. Wrap in :func:`contextlib.closing`
        when stopping early, so the connection is released at once.
        """
        state = _StreamState(task_id, last_event_id, reconnect, max_reconnects)
        url = self._base_url + state.path
        while True:
            try:
                with self._http.stream(
                    "GET", url, headers=state.headers(self._headers)
                ) as response:
                    state.connected = True
                    if not response.is_success:
                        response.read()
                    _check_stream_response(response)
                    for sse in EventSource(response).iter_sse():
                        event = state.feed(sse)
                        if event is not None:
                            yield event
                        if state.done:
                            return
                reason = _EARLY_EOF
            except _STREAM_DROPS as exc:
                if not state.connected:
                    raise OrchUnreachable(self._base_url, _reason(exc)) from exc
                reason = _reason(exc)
            _sleep(state.dropped(reason))

    def collect_stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> StreamResult:
        """Read a task's whole stream (see :meth:`stream`) into a :class:`StreamResult`.

        An ``error`` event is returned in ``StreamResult.error``, not raised: it is the
        task's outcome, not a failure of the call.
        """
        collector = _Collector(task_id)
        for event in self.stream(
            task_id,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        ):
            collector.add(event)
        return collector.result()


class AsyncOrchClient:
    """Async twin of :class:`OrchClient`: same methods, awaited; ``stream`` is an async iterator."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if http is not None and transport is not None:
            raise ValueError("pass either http= or transport=, not both")
        self._base_url = _base_url(base_url)
        self._headers = _default_headers(token, headers)
        self._owns_http = http is None
        self._http = (
            http if http is not None else httpx.AsyncClient(timeout=timeout, transport=transport)
        )

    @property
    def base_url(self) -> str:
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not an ``http=`` client supplied by the caller)."""
        if self._owns_http:
            await self._http.aclose()

    async def _call(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                self._base_url + call.path,
                json=call.json,
                headers={**self._headers, "Accept": call.accept},
            )
        except httpx.TransportError as exc:
            raise OrchUnreachable(self._base_url, _reason(exc)) from exc
        return call.result(response)

    # -- sessions

    async def create_session(
        self, ttl_seconds: int = 600, metadata: Mapping[str, Any] | None = None
    ) -> SessionCreated:
        """``POST /v1/sessions``; ``metadata`` is only sent when given."""
        return await self._call(_create_session(ttl_seconds, metadata))

    async def get_session(self, session_id: str) -> SessionInfo:
        """``GET /v1/sessions/{id}``; an expired session raises ``SESSION_EXPIRED`` (410)."""
        return await self._call(_get_session(session_id))

    async def delete_session(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{id}``: its queued and running tasks end ``cancelled``."""
        await self._call(_delete_session(session_id))

    # -- tasks

    async def submit_task(
        self,
        session_id: str,
        prompt: str,
        *,
        priority: Priority = "interactive",
        pool: str = "default",
        max_tokens: int = 64,
        seed: int | None = None,
        determinism: Determinism = "best_effort",
        sampler_profile_version: str = "v1",
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> TaskAdmitted:
        """``POST /v1/tasks``. The full ``params`` object is sent; ``seed`` only when set."""
        return await self._call(
            _submit_task(
                session_id,
                prompt,
                priority=priority,
                pool=pool,
                max_tokens=max_tokens,
                seed=seed,
                determinism=determinism,
                sampler_profile_version=sampler_profile_version,
                temperature=temperature,
                top_p=top_p,
            )
        )

    async def get_task(self, task_id: str) -> Task:
        """``GET /v1/tasks/{id}``."""
        return await self._call(_get_task(task_id))

    async def cancel_task(self, task_id: str) -> Task:
        """``DELETE /v1/tasks/{id}``; a task that already ended raises ``CONFLICT`` (409)."""
        return await self._call(_cancel_task(task_id))

    # -- pools, routing, health, metrics

    async def list_pools(self) -> list[Pool]:
        """``GET /v1/pools``, unwrapped from its ``{"pools": [...]}`` envelope."""
        return await self._call(_list_pools())

    async def get_pool(self, pool_id: str) -> Pool:
        """``GET /v1/pools/{id}``."""
        return await self._call(_get_pool(pool_id))

    async def get_routing(self) -> Routing:
        """``GET /v1/admin/routing``."""
        return await self._call(_get_routing())

    async def set_routing(self, mode: FallbackMode) -> Routing:
        """``PUT /v1/admin/routing``; the server persists the mode."""
        return await self._call(_set_routing(mode))

    async def health(self) -> Health:
        """``GET /healthz``: the process is up (not that it can serve)."""
        return await self._call(_health())

    async def ready(self) -> Readiness:
        """``GET /readyz``; raises :class:`OrchError` ``POOL_UNREADY`` (503) while warming."""
        return await self._call(_ready())

    async def metrics_text(self) -> str:
        """``GET /metrics``: the Prometheus text exposition, unparsed."""
        return await self._call(_metrics())

    # -- stream

    async def stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Async twin of :meth:`OrchClient.stream`; stop early via :func:`contextlib.aclosing`."""
        state = _StreamState(task_id, last_event_id, reconnect, max_reconnects)
        url = self._base_url + state.path
        while True:
            try:
                async with self._http.stream(
                    "GET", url, headers=state.headers(self._headers)
                ) as response:
                    state.connected = True
                    if not response.is_success:
                        await response.aread()
                    _check_stream_response(response)
                    async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                        async for sse in events:
                            event = state.feed(sse)
                            if event is not None:
                                yield event
                            if state.done:
                                return
                reason = _EARLY_EOF
            except _STREAM_DROPS as exc:
                if not state.connected:
                    raise OrchUnreachable(self._base_url, _reason(exc)) from exc
                reason = _reason(exc)
            await _asleep(state.dropped(reason))

    async def collect_stream(
        self,
        task_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
    ) -> StreamResult:
        """Async twin of :meth:`OrchClient.collect_stream`."""
        collector = _Collector(task_id)
        async for event in self.stream(
            task_id,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
        ):
            collector.add(event)
        return collector.result()

"""What both clients share: the requests they build, how answers are decoded, stream state."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel, ValidationError

from orchestrator import __version__
from orchestrator.client.errors import (
    _STREAM_ENDPOINT,
    OrchError,
    OrchProtocolError,
    StreamGapError,
    StreamInterruptedError,
)
from orchestrator.numerals import ascii_int
from orchestrator.schemas import (
    STREAM_EVENT_MODELS,
    Approval,
    ApprovalList,
    AuditLog,
    Definition,
    DefinitionList,
    DefinitionSummary,
    DeliveryList,
    EndData,
    ErrorData,
    ErrorEnvelope,
    Health,
    Pool,
    PoolList,
    Readiness,
    Routing,
    Run,
    RunList,
    SessionCreated,
    SessionInfo,
    StartedData,
    Task,
    TaskAdmitted,
    TokenData,
    Webhook,
    WebhookList,
)

DEFAULT_TIMEOUT = 30.0
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
    headers: Mapping[str, str] = field(default_factory=dict)
    """Request headers of this call alone (``X-Orch-Actor``)."""

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


def _register_definition(document: Mapping[str, Any]) -> _Call[Definition]:
    return _Call("POST", "/v1/definitions", "/v1/definitions", _model(Definition), dict(document))


def _get_definition(name: str, version: str) -> _Call[Definition]:
    path = f"/v1/definitions/{_segment(name, 'name')}/versions/{_segment(version, 'version')}"
    return _Call("GET", "/v1/definitions/{name}/versions/{version}", path, _model(Definition))


def _decode_definitions(endpoint: str, response: httpx.Response) -> list[DefinitionSummary]:
    return _validate(endpoint, response, DefinitionList).definitions


def _list_definitions() -> _Call[list[DefinitionSummary]]:
    return _Call("GET", "/v1/definitions", "/v1/definitions", _decode_definitions)


def _actor(actor: str | None) -> dict[str, str]:
    return {} if actor is None else {"X-Orch-Actor": actor}


def _create_run(
    session_id: str,
    definition: str,
    version: str,
    *,
    inputs: Mapping[str, Any] | None,
    seed: int | None,
    max_parallel: int | None,
    actor: str | None = None,
) -> _Call[Run]:
    body: dict[str, Any] = {
        "session_id": session_id,
        "definition": definition,
        "version": version,
        "inputs": dict(inputs or {}),
    }
    if seed is not None:
        body["seed"] = seed
    if max_parallel is not None:
        body["max_parallel"] = max_parallel
    return _Call("POST", "/v1/runs", "/v1/runs", _model(Run), body, headers=_actor(actor))


def _get_run(run_id: str) -> _Call[Run]:
    path = f"/v1/runs/{_segment(run_id, 'run_id')}"
    return _Call("GET", "/v1/runs/{id}", path, _model(Run))


def _abort_run(run_id: str, actor: str | None = None) -> _Call[Run]:
    path = f"/v1/runs/{_segment(run_id, 'run_id')}"
    return _Call("DELETE", "/v1/runs/{id}", path, _model(Run), headers=_actor(actor))


def _decide_checkpoint(
    run_id: str,
    checkpoint_id: str,
    decision: str,
    decided_by: str,
    *,
    prompt: str | None,
    inputs: Mapping[str, Any] | None,
) -> _Call[Approval]:
    path = (
        f"/v1/runs/{_segment(run_id, 'run_id')}/checkpoints/"
        f"{_segment(checkpoint_id, 'checkpoint_id')}"
    )
    body: dict[str, Any] = {"decision": decision, "decided_by": decided_by}
    if prompt is not None:
        body["prompt"] = prompt
    if inputs is not None:
        body["inputs"] = dict(inputs)
    route = "/v1/runs/{id}/checkpoints/{checkpoint_id}"
    return _Call("POST", route, path, _model(Approval), body)


def _list_approvals(query: Mapping[str, str | int | None]) -> _Call[ApprovalList]:
    given = {key: str(value) for key, value in query.items() if value is not None}
    path = "/v1/approvals" + ("?" + str(httpx.QueryParams(given)) if given else "")
    return _Call("GET", "/v1/approvals", path, _model(ApprovalList))


def _get_run_audit(run_id: str) -> _Call[AuditLog]:
    path = f"/v1/runs/{_segment(run_id, 'run_id')}/audit"
    return _Call("GET", "/v1/runs/{id}/audit", path, _model(AuditLog))


def _list_runs(query: Mapping[str, str | int | None]) -> _Call[RunList]:
    given = {key: str(value) for key, value in query.items() if value is not None}
    path = "/v1/runs" + ("?" + str(httpx.QueryParams(given)) if given else "")
    return _Call("GET", "/v1/runs", path, _model(RunList))


def _create_webhook(url: str, events: list[str], secret: str) -> _Call[Webhook]:
    body = {"url": url, "events": events, "secret": secret}
    return _Call("POST", "/v1/webhooks", "/v1/webhooks", _model(Webhook), body)


def _list_webhooks() -> _Call[WebhookList]:
    return _Call("GET", "/v1/webhooks", "/v1/webhooks", _model(WebhookList))


def _get_webhook(webhook_id: str) -> _Call[Webhook]:
    path = f"/v1/webhooks/{_segment(webhook_id, 'webhook_id')}"
    return _Call("GET", "/v1/webhooks/{id}", path, _model(Webhook))


def _delete_webhook(webhook_id: str) -> _Call[None]:
    path = f"/v1/webhooks/{_segment(webhook_id, 'webhook_id')}"
    return _Call("DELETE", "/v1/webhooks/{id}", path, _decode_nothing)


def _list_deliveries(webhook_id: str, query: Mapping[str, str | int | None]) -> _Call[DeliveryList]:
    given = {key: value for key, value in query.items() if value is not None}
    path = f"/v1/webhooks/{_segment(webhook_id, 'webhook_id')}/deliveries"
    path += "?" + str(httpx.QueryParams(given)) if given else ""
    return _Call("GET", "/v1/webhooks/{id}/deliveries", path, _model(DeliveryList))


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

"""Every interaction of the ``orchq-client`` -> ``orchestratord`` pact, stated once.

The table is data, so the consumer tests (which record it by driving our client
against the Pact mock server), the provider verification (which replays it
against a real server) and ``orchq pact regen`` cannot drift apart. Each
:class:`Interaction` carries the ORCH IDs its provider verification certifies, so a
failed replay names the broken requirement.

IDs the server makes up (session and task IDs) are injected from the provider
state: the example path ``/v1/sessions/sess_1`` carries a ``ProviderState``
generator ``/v1/sessions/${session_id}``, which the verifier fills from the JSON
the state handler answers (:mod:`harness.pact.states`).

Text bodies (the SSE stream) are pinned by raw regex matching rules, all of
which must match (``combine: AND``): a ``match.regex`` as a text body would be
serialised literally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pact import Pact, generate, match
from pact.match.matcher import AbstractMatcher, GenericMatcher

__all__ = [
    "CONSUMER",
    "ENGINE_SIDE_KINDS",
    "INTERACTIONS",
    "PACT_FILE",
    "PROVIDER",
    "REQUIREMENTS_COMMENT",
    "Interaction",
    "add_interaction",
    "by_description",
]

CONSUMER = "orchq-client"
PROVIDER = "orchestratord"
PACT_FILE = f"{CONSUMER}-{PROVIDER}.json"
REQUIREMENTS_COMMENT = "requirements"
"""Key of an interaction's ``comments`` listing the requirement IDs it pins, so a pact file
names them itself (``orchq pact check`` reads them, from any team's pact)."""

RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
DIGITS = r"^\d+$"
EXAMPLE_CREATED = "2026-01-01T00:00:00.000Z"
EXAMPLE_EXPIRES = "2026-01-01T00:10:00.000Z"


@dataclass(frozen=True)
class Interaction:
    """One HTTP interaction: the request our client sends and the answer it relies on.

    ``states`` are provider state names (see :data:`harness.pact.states.STATES`);
    ``path_expr`` is the provider-state expression that rebuilds ``path`` from the
    state's values. ``sse_rules`` are regexes the whole text body must match.
    """

    description: str
    req: tuple[str, ...]
    method: str
    path: str
    status: int
    states: tuple[str, ...] = ()
    path_expr: str | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: Any = None
    response_headers: Mapping[str, Any] = field(default_factory=dict)
    response_body: Any = None
    sse_body: str | None = None
    sse_rules: tuple[str, ...] = ()
    request_text: tuple[str, str] | None = None
    """``(content type, text)`` of a request body that is not JSON."""


def _from_state(example: str, expression: str) -> AbstractMatcher[str]:
    """A request value the verifier takes from the provider state (``${name}``)."""
    return GenericMatcher("type", value=example, generator=generate.provider_state(expression))


def _path_from_state(example: str, expression: str) -> AbstractMatcher[str]:
    """A request path the verifier builds from the provider state.

    The path must still match its own template (``/v1/tasks/{id}/stream``, each ``${name}``
    one segment): a stub server serving the pact matches requests by it, and a ``type``
    matcher would let ``GET /v1/pools`` match ``GET /v1/tasks/{id}``.
    """
    parts = re.split(r"\$\{[^}]+\}", expression)
    pattern = "^" + "[^/]+".join(re.escape(part) for part in parts) + "$"
    return GenericMatcher(
        "regex", value=example, regex=pattern, generator=generate.provider_state(expression)
    )


def _stamp(example: str = EXAMPLE_CREATED) -> AbstractMatcher[str]:
    return match.regex(example, regex=RFC3339_UTC)


def _error(kind: str, *, retriable: bool, message: str) -> dict[str, Any]:
    """The error envelope (ORCH-0014): exact kind and retriable, any message and request id."""
    return {
        "error": {
            "kind": kind,
            "message": match.str(message),
            "retriable": retriable,
            "request_id": match.str("req_1"),
        }
    }


_BACKPRESSURE = {
    "Retry-After": match.regex("1", regex=DIGITS),
    "X-Backoff-Ms": match.regex("1100", regex=DIGITS),
}
_SESSION_PATH = "/v1/sessions/${session_id}"
_TASK_PATH = "/v1/tasks/${task_id}"


def _task_request(
    session_id: Any,
    *,
    pool: str = "default",
    priority: str = "interactive",
    prompt: str = "hello",
    seed: int | None = 7,
    determinism: str = "strict",
) -> dict[str, Any]:
    """Exactly the body ``OrchClient.submit_task`` sends (the full ``params`` object)."""
    params: dict[str, Any] = {} if seed is None else {"seed": seed}
    params |= {
        "sampler_profile_version": "v1",
        "determinism": determinism,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    return {
        "session_id": session_id,
        "prompt": prompt,
        "priority": priority,
        "pool": pool,
        "max_tokens": 2,
        "params": params,
    }


def _state_session() -> AbstractMatcher[str]:
    return _from_state("sess_1", "${session_id}")


def _admitted(seed: Any) -> dict[str, Any]:
    return {
        "task_id": match.str("task_1"),
        "session_id": match.str("sess_1"),
        "state": "queued",
        "priority": "interactive",
        "pool": "default",
        "queue_position": match.int(0),
        "seed": seed,
        "stream_url": match.regex("/v1/tasks/task_1/stream", regex=r"^/v1/tasks/[^/]+/stream$"),
    }


_SESSION_CREATED: dict[str, Any] = {
    "session_id": match.str("sess_1"),
    "ttl_seconds": 600,
    "created_at": _stamp(),
    "expires_at": _stamp(EXAMPLE_EXPIRES),
    "metadata": {"user": "alice"},
}

_SESSION_INFO: dict[str, Any] = {
    "session_id": match.str("sess_1"),
    "ttl_seconds": 600,
    "created_at": _stamp(),
    "expires_at": _stamp(EXAMPLE_EXPIRES),
    "metadata": {},
    "ttl_remaining_ms": match.int(599_000),
    "tasks": {"queued": match.int(0), "running": match.int(0), "terminal": match.int(0)},
}


def _task_body(
    *,
    state: str,
    finish_reason: Any,
    error: Any,
    attempt_state: str,
    attempt_error: Any,
    determinism: str = "strict",
) -> dict[str, Any]:
    return {
        "task_id": match.str("task_1"),
        "session_id": match.str("sess_1"),
        "state": state,
        "priority": "interactive",
        "pool": "default",
        "max_tokens": 2,
        "params": {
            "seed": 7,
            "sampler_profile_version": "v1",
            "determinism": determinism,
            "temperature": match.number(1.0),
            "top_p": match.number(1.0),
        },
        "replica_id": match.str("r1"),
        "engine": match.str("mock"),
        "engine_version": match.str("mock-1"),
        "tokens_out": match.int(2),
        "finish_reason": finish_reason,
        "error": error,
        "attempts": match.each_like(
            {
                "attempt": match.int(1),
                "replica_id": match.str("r1"),
                "state": attempt_state,
                "error_kind": attempt_error,
                "started_at": _stamp(),
                "finished_at": _stamp(),
            },
            min=1,
        ),
        "created_at": _stamp(),
        "started_at": _stamp(),
        "finished_at": _stamp(),
    }


_POOL = {
    "pool_id": match.str("default"),
    "ready": match.bool(True),
    "queue_capacity": match.int(1024),
    "queue_depth": {"interactive": match.int(0), "batch": match.int(0)},
    "overflow_policy": match.regex("reject", regex=r"^(reject|drop_lru)$"),
    "max_attempts": match.int(2),
    "batch_share_every": match.int(4),
    "decode_timeout_ms": match.int(30000),
    "replicas": match.each_like(
        {
            "replica_id": match.str("r1"),
            "engine": match.str("mock"),
            "engine_version": match.str("mock-1"),
            "state": match.regex("ready", regex=r"^(warming|ready|draining|down)$"),
            "in_flight": match.int(0),
            "slots": match.int(4),
        },
        min=1,
    ),
}

_SSE_EVENT = r"data: \{[^\n]*\}\n\n"
_SSE_HEAD = r"^retry: \d+\n\n(: [^\n]*\n\n)*"
_STREAM_EXAMPLE = (
    "retry: 3000\n\n"
    "id: 1\nevent: started\n"
    'data: {"task_id":"task_1","replica_id":"r1","engine":"mock","engine_version":"mock-1",'
    '"seed":7,"sampler_profile_version":"v1"}\n\n'
    'id: 2\nevent: token\ndata: {"index":0,"text":" mursha","token_id":238}\n\n'
    'id: 3\nevent: token\ndata: {"index":1,"text":" zori","token_id":150}\n\n'
    'id: 4\nevent: end\ndata: {"tokens_out":2,"finish_reason":"length","seed":7}\n\n'
)
_RESUMED_EXAMPLE = (
    "retry: 3000\n\n"
    'id: 3\nevent: token\ndata: {"index":1,"text":" zori","token_id":150}\n\n'
    'id: 4\nevent: end\ndata: {"tokens_out":2,"finish_reason":"length","seed":7}\n\n'
)
_SSE_TYPE = {"Content-Type": match.regex("text/event-stream", regex=r"^text/event-stream(;.*)?$")}


ENGINE_SIDE_KINDS: tuple[str, ...] = (
    "WORKER_RESET",
    "REPLICA_EXHAUSTED",
    "DECODE_TIMEOUT",
    "INTERNAL",
)
"""Error kinds that end a running task (ORCH-0062): a task's ``error`` and its stream's
``error`` event, never an HTTP status of an admission."""


def _failed_task(kind: str, *, determinism: str = "strict") -> dict[str, Any]:
    """A task that ended ``failed`` with ``kind``: its error, its failed attempts."""
    return _task_body(
        state="failed",
        finish_reason=None,
        error={"kind": kind, "message": match.str(f"{kind.lower()}"), "retriable": True},
        attempt_state="failed",
        attempt_error=kind,
        determinism=determinism,
    )


def _error_event(kind: str, retriable: bool) -> str:
    flag = "true" if retriable else "false"
    return f'data: {{"kind":"{kind}","message":"{kind.lower()}","retriable":{flag}}}\n\n'


def _error_stream(
    kind: str, *, tokens: bool, retriable: bool = True
) -> tuple[str, tuple[str, ...]]:
    """The example and the rules of a stream that closes with ``error`` of ``kind``.

    ``tokens``: the task sent ``started`` and one ``token`` first (event ids 1 and 2),
    else the ``error`` event is the stream's first and only event (id 1).
    """
    example = "retry: 3000\n\n"
    structure = _SSE_HEAD
    next_id = 1
    if tokens:
        example += (
            'id: 1\nevent: started\ndata: {"task_id":"task_1","replica_id":"r1","engine":"mock",'
            '"engine_version":"mock-1","seed":7,"sampler_profile_version":"v1"}\n\n'
            'id: 2\nevent: token\ndata: {"index":0,"text":" mursha","token_id":238}\n\n'
        )
        structure += r"id: 1\nevent: started\n" + _SSE_EVENT + r"id: 2\nevent: token\n" + _SSE_EVENT
        next_id = 3
    example += f"id: {next_id}\nevent: error\n" + _error_event(kind, retriable)
    structure += rf"id: {next_id}\nevent: error\n" + _SSE_EVENT + "$"
    flag = "true" if retriable else "false"
    return example, (
        structure,
        rf'[\s\S]*event: error\ndata: \{{[^\n]*"kind": ?"{kind}"[,}}][\s\S]*',
        rf'[\s\S]*event: error\ndata: \{{[^\n]*"retriable": ?{flag}[,}}][\s\S]*',
        r'[\s\S]*event: error\ndata: \{[^\n]*"message": ?"[^"]+"[\s\S]*',
    )


def _engine_side(
    kind: str, pool: str, tokens: bool, req: tuple[str, ...]
) -> tuple[Interaction, Interaction]:
    """A task that failed with ``kind`` on ``pool`` of the ``faulty`` server, read and streamed."""
    state = f"a task failed with {kind}"
    determinism = "best_effort" if kind == "WORKER_RESET" else "strict"
    example, rules = _error_stream(kind, tokens=tokens)
    body = _failed_task(kind, determinism=determinism)
    return (
        Interaction(
            f"get a task that failed with {kind}",
            (*req, "ORCH-0062", "ORCH-0056", "ORCH-0019"),
            "GET",
            "/v1/tasks/task_1",
            200,
            states=(state,),
            path_expr=_TASK_PATH,
            response_body={**body, "pool": pool},
        ),
        Interaction(
            f"stream a task that failed with {kind}",
            (*req, "ORCH-0020", "ORCH-0082"),
            "GET",
            "/v1/tasks/task_1/stream",
            200,
            states=(state,),
            path_expr=_TASK_PATH + "/stream",
            request_headers={"Accept": "text/event-stream"},
            response_headers=_SSE_TYPE,
            sse_body=example,
            sse_rules=rules,
        ),
    )


INTERACTIONS: tuple[Interaction, ...] = (
    # ---- sessions
    Interaction(
        "create a session with metadata",
        ("ORCH-0025", "ORCH-0026", "ORCH-0005"),
        "POST",
        "/v1/sessions",
        201,
        request_body={"ttl_seconds": 600, "metadata": {"user": "alice"}},
        response_body=_SESSION_CREATED,
    ),
    Interaction(
        "create a session with an out-of-range ttl",
        ("ORCH-0025", "ORCH-0002", "ORCH-0014"),
        "POST",
        "/v1/sessions",
        400,
        request_body={"ttl_seconds": 0},
        response_body=_error("INVALID_PARAMS", retriable=False, message="ttl_seconds: too low"),
    ),
    Interaction(
        "get a session",
        ("ORCH-0027", "ORCH-0029"),
        "GET",
        "/v1/sessions/sess_1",
        200,
        states=("a session exists",),
        path_expr=_SESSION_PATH,
        response_body=_SESSION_INFO,
    ),
    Interaction(
        "delete a session",
        ("ORCH-0033",),
        "DELETE",
        "/v1/sessions/sess_1",
        204,
        states=("a session exists",),
        path_expr=_SESSION_PATH,
    ),
    Interaction(
        "get a deleted session",
        ("ORCH-0033", "ORCH-0030"),
        "GET",
        "/v1/sessions/sess_1",
        404,
        states=("a deleted session exists",),
        path_expr=_SESSION_PATH,
        response_body=_error("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "get an unknown session",
        ("ORCH-0030", "ORCH-0014", "ORCH-0019", "ORCH-0004"),
        "GET",
        "/v1/sessions/sess_unknown",
        404,
        response_headers={"X-Request-Id": match.regex("req_1", regex=r"^\S+$")},
        response_body=_error("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "get an expired session",
        ("ORCH-0031",),
        "GET",
        "/v1/sessions/sess_1",
        410,
        states=("an expired session exists",),
        path_expr=_SESSION_PATH,
        response_body=_error("SESSION_EXPIRED", retriable=False, message="session expired"),
    ),
    # ---- task admission and the determinism knobs
    Interaction(
        "submit a strict task with a seed",
        ("ORCH-0042", "ORCH-0044", "ORCH-0040"),
        "POST",
        "/v1/tasks",
        202,
        states=("a session exists",),
        request_body=_task_request(_state_session()),
        response_headers={
            "Location": match.regex("/v1/tasks/task_1", regex=r"^/v1/tasks/[^/]+$"),
        },
        response_body=_admitted(7),
    ),
    Interaction(
        "submit a best-effort task without a seed",
        ("ORCH-0042", "ORCH-0044"),
        "POST",
        "/v1/tasks",
        202,
        states=("a session exists",),
        request_body=_task_request(_state_session(), seed=None, determinism="best_effort"),
        response_headers={
            "Location": match.regex("/v1/tasks/task_1", regex=r"^/v1/tasks/[^/]+$"),
        },
        response_body=_admitted(match.int(1234)),
    ),
    Interaction(
        "submit a strict task without a seed",
        ("ORCH-0041", "ORCH-0014"),
        "POST",
        "/v1/tasks",
        400,
        states=("a session exists",),
        request_body=_task_request(_state_session(), seed=None),
        response_body=_error(
            "INVALID_PARAMS", retriable=False, message="determinism 'strict' requires a seed"
        ),
    ),
    Interaction(
        "submit a task to an unknown session",
        ("ORCH-0046",),
        "POST",
        "/v1/tasks",
        404,
        request_body=_task_request("sess_unknown"),
        response_body=_error("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "submit a task with a body over the size limit",
        ("ORCH-0009",),
        "POST",
        "/v1/tasks",
        413,
        states=("a session exists", "the request body limit is 1024 bytes"),
        request_body=_task_request(_state_session(), prompt="x" * 2048),
        response_body=_error("PAYLOAD_TOO_LARGE", retriable=False, message="body too large"),
    ),
    # ---- backpressure: every 429/503 carries Retry-After and X-Backoff-Ms
    Interaction(
        "submit a task while the queue of pool default is full",
        ("ORCH-0095", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        429,
        states=("the queue of pool default is full",),
        request_body=_task_request(_state_session()),
        response_headers=_BACKPRESSURE,
        response_body=_error("ADMISSION_REJECT", retriable=True, message="queue is full"),
    ),
    Interaction(
        "submit a batch task while the drop_lru queue of pool lru holds only interactive tasks",
        ("ORCH-0098", "ORCH-0099", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        429,
        states=("the queue of pool lru is full of interactive tasks",),
        request_body=_task_request(_state_session(), pool="lru", priority="batch"),
        response_headers=_BACKPRESSURE,
        response_body=_error("QUEUE_FULL_DROP_LRU", retriable=True, message="nothing evictable"),
    ),
    Interaction(
        "submit a task to a pool whose replicas are warming",
        ("ORCH-0048", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        503,
        states=("a session exists", "pool warming is still warming"),
        request_body=_task_request(_state_session(), pool="warming"),
        response_headers=_BACKPRESSURE,
        response_body=_error("POOL_UNREADY", retriable=True, message="pool is warming"),
    ),
    Interaction(
        "submit a task to a pool with no replica that can become ready",
        ("ORCH-0049", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        503,
        states=("a session exists", "pool down has no replica that can become ready"),
        request_body=_task_request(_state_session(), pool="down"),
        response_headers=_BACKPRESSURE,
        response_body=_error("POOL_UNAVAILABLE", retriable=True, message="pool unavailable"),
    ),
    # ---- tasks
    Interaction(
        "get a completed task",
        ("ORCH-0051", "ORCH-0052", "ORCH-0061", "ORCH-0100"),
        "GET",
        "/v1/tasks/task_1",
        200,
        states=("a completed task exists",),
        path_expr=_TASK_PATH,
        response_body=_task_body(
            state="completed",
            finish_reason=match.regex("length", regex=r"^(length|stop)$"),
            error=None,
            attempt_state="completed",
            attempt_error=None,
        ),
    ),
    Interaction(
        "get an unknown task",
        ("ORCH-0058",),
        "GET",
        "/v1/tasks/task_unknown",
        404,
        response_body=_error("NOT_FOUND", retriable=False, message="task not found"),
    ),
    Interaction(
        "cancel a running task",
        ("ORCH-0066", "ORCH-0063"),
        "DELETE",
        "/v1/tasks/task_1",
        200,
        states=("a running task exists",),
        path_expr=_TASK_PATH,
        response_body={
            **_task_body(
                state="cancelled",
                finish_reason=None,
                error={"kind": "CANCELLED", "message": match.str("cancelled"), "retriable": False},
                attempt_state="cancelled",
                attempt_error=None,
            ),
            "tokens_out": match.int(1),
        },
    ),
    Interaction(
        "cancel a completed task",
        ("ORCH-0069",),
        "DELETE",
        "/v1/tasks/task_1",
        409,
        states=("a completed task exists",),
        path_expr=_TASK_PATH,
        response_body=_error("CONFLICT", retriable=False, message="task already ended"),
    ),
    # ---- the stream
    Interaction(
        "stream a completed task",
        ("ORCH-0070", "ORCH-0071", "ORCH-0072", "ORCH-0073", "ORCH-0080", "ORCH-0081", "ORCH-0084"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a completed task exists",),
        path_expr=_TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream"},
        response_headers=_SSE_TYPE,
        sse_body=_STREAM_EXAMPLE,
        sse_rules=(
            _SSE_HEAD
            + r"id: 1\nevent: started\n"
            + _SSE_EVENT
            + r"id: 2\nevent: token\n"
            + _SSE_EVENT
            + r"id: 3\nevent: token\n"
            + _SSE_EVENT
            + r"id: 4\nevent: end\n"
            + _SSE_EVENT
            + "$",
            r'[\s\S]*event: started\ndata: \{[^\n]*"seed": ?7[,}][\s\S]*',
            r'[\s\S]*event: token\ndata: \{[^\n]*"index": ?0[,}][\s\S]*',
            r'[\s\S]*event: token\ndata: \{[^\n]*"token_id": ?\d+[,}][\s\S]*',
            r'[\s\S]*event: end\ndata: \{[^\n]*"tokens_out": ?2[,}][\s\S]*',
            r'[\s\S]*event: end\ndata: \{[^\n]*"seed": ?7[,}][\s\S]*',
        ),
    ),
    Interaction(
        "resume the stream of a completed task after event 2",
        ("ORCH-0083", "ORCH-0084"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a completed task exists",),
        path_expr=_TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream", "Last-Event-ID": "2"},
        response_headers=_SSE_TYPE,
        sse_body=_RESUMED_EXAMPLE,
        sse_rules=(
            _SSE_HEAD
            + r"id: 3\nevent: token\n"
            + _SSE_EVENT
            + r"id: 4\nevent: end\n"
            + _SSE_EVENT
            + "$",
            r'[\s\S]*event: token\ndata: \{[^\n]*"index": ?1[,}][\s\S]*',
        ),
    ),
    # ---- auth, pools, health
    Interaction(
        "list pools with a wrong token",
        ("ORCH-0007",),
        "GET",
        "/v1/pools",
        401,
        states=("an API token is required",),
        request_headers={"Authorization": "Bearer wrong-token"},
        response_body=_error("UNAUTHORIZED", retriable=False, message="missing or wrong token"),
    ),
    Interaction(
        "list pools",
        ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
        "GET",
        "/v1/pools",
        200,
        response_body={"pools": match.each_like(_POOL, min=1)},
    ),
    Interaction(
        "check health",
        ("ORCH-0129",),
        "GET",
        "/healthz",
        200,
        response_body={"status": "ok"},
    ),
    # ---- the error kinds that end a running task (spec section 2.2), where they appear
    *(
        interaction
        for kind, pool, tokens, req in (
            ("WORKER_RESET", "reset", True, ("ORCH-0108",)),
            ("REPLICA_EXHAUSTED", "exhausted", False, ("ORCH-0102",)),
            ("DECODE_TIMEOUT", "stalled", True, ("ORCH-0111", "ORCH-0112")),
            ("INTERNAL", "crashing", False, ("ORCH-0018", "ORCH-0060")),
        )
        for interaction in _engine_side(kind, pool, tokens, req)
    ),
    # ---- the request's own faults: method, media type
    Interaction(
        "delete the pool list, a method its path does not support",
        ("ORCH-0011", "ORCH-0012", "ORCH-0014"),
        "DELETE",
        "/v1/pools",
        405,
        response_headers={"Allow": match.regex("GET", regex=r"^(.*, )?GET(, .*)?$")},
        response_body=_error("METHOD_NOT_ALLOWED", retriable=False, message="not allowed"),
    ),
    Interaction(
        "create a session with a body that is not JSON",
        ("ORCH-0010", "ORCH-0014"),
        "POST",
        "/v1/sessions",
        415,
        request_text=("text/plain", "ttl_seconds=600"),
        response_body=_error("UNSUPPORTED_MEDIA_TYPE", retriable=False, message="not JSON"),
    ),
    # ---- terminal errors of tasks ended by a client or by the queue
    Interaction(
        "stream a cancelled task",
        ("ORCH-0063", "ORCH-0020", "ORCH-0082"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a cancelled task exists",),
        path_expr=_TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream"},
        response_headers=_SSE_TYPE,
        sse_body=_error_stream("CANCELLED", tokens=True, retriable=False)[0],
        sse_rules=_error_stream("CANCELLED", tokens=True, retriable=False)[1],
    ),
    Interaction(
        "get a task evicted from a full drop_lru queue",
        ("ORCH-0064", "ORCH-0097"),
        "GET",
        "/v1/tasks/task_1",
        200,
        states=("a task was evicted from the drop_lru queue of pool lru",),
        path_expr=_TASK_PATH,
        response_body={
            **_task_body(
                state="dropped",
                finish_reason=None,
                error={
                    "kind": "QUEUE_FULL_DROP_LRU",
                    "message": match.str("evicted"),
                    "retriable": True,
                },
                attempt_state="failed",
                attempt_error=None,
            ),
            "priority": "batch",
            "pool": "lru",
            "replica_id": None,
            "engine": None,
            "engine_version": None,
            "tokens_out": 0,
            "attempts": [],
            "started_at": None,
        },
    ),
)


def by_description() -> dict[str, Interaction]:
    """The table keyed by description (descriptions are unique)."""
    return {interaction.description: interaction for interaction in INTERACTIONS}


def add_interaction(pact: Pact, interaction: Interaction) -> None:
    """Declare ``interaction`` on ``pact`` (before ``pact.serve()``: a served Pact is locked)."""
    declared = pact.upon_receiving(interaction.description)
    for state in interaction.states:
        declared.given(state)
    declared.set_comment(REQUIREMENTS_COMMENT, list(interaction.req))
    path: str | AbstractMatcher[Any] = interaction.path
    if interaction.path_expr is not None:
        path = _path_from_state(interaction.path, interaction.path_expr)
    declared.with_request(interaction.method, path)
    for name, value in interaction.request_headers.items():
        declared.with_header(name, value, part="Request")
    if interaction.request_body is not None:
        declared.with_body(
            interaction.request_body, content_type="application/json", part="Request"
        )
    if interaction.request_text is not None:
        content_type, text = interaction.request_text
        declared.with_body(text, content_type=content_type, part="Request")
    declared.will_respond_with(interaction.status)
    for name, value in interaction.response_headers.items():
        declared.with_header(name, value, part="Response")
    if interaction.response_body is not None:
        declared.with_body(
            interaction.response_body, content_type="application/json", part="Response"
        )
    if interaction.sse_body is not None:
        declared.with_body(interaction.sse_body, content_type="text/event-stream", part="Response")
        matchers = [{"match": "regex", "regex": rx} for rx in interaction.sse_rules]
        declared.with_matching_rules(
            {"body": {"$": {"combine": "AND", "matchers": matchers}}}, part="Response"
        )

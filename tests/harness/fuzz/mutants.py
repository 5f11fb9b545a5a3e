"""Deliberately broken orchestrators for the fuzz self-tests.

Each mutant is an ASGI layer (``orch_serve(wrap_app=...)``) around the real
orchestratord that breaks exactly one requirement on the wire and leaves the
rest conformant, so only the check of that requirement can notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.harness.mutantkit import (
    App,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    Wrap,
    matching,
    request_header,
    respond,
    rewrite_chunks,
    rewrite_headers,
    rewrite_response,
    without,
)

PRIORITIES = ("interactive", "batch")


def _answer_error_when(
    app: App, refuse: Callable[[Any], bool], status: int, error: dict[str, Any]
) -> App:
    """``POST /v1/tasks`` whose JSON body satisfies ``refuse`` gets ``error`` (well formed)."""
    create_task = matching("POST", "/v1/tasks")

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not create_task(scope):
            await app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if refuse(document):
            request_id = request_header(scope, b"x-request-id") or b"req_mutant"
            envelope = {"error": {**error, "request_id": request_id.decode("latin-1")}}
            headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id)]
            await respond(send, status, headers, json.dumps(envelope).encode())
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    return mutant


def server_error_on_bad_priority(app: App) -> App:
    """``POST /v1/tasks`` with an invalid ``priority`` crashes: 500 ``INTERNAL`` (ORCH-0017).

    The 500 itself is well formed (envelope, X-Request-Id), so only the
    "no 5xx because of the request" check can see it.
    """

    def bad(document: Any) -> bool:
        return isinstance(document, dict) and document.get("priority", "batch") not in PRIORITIES

    error = {"kind": "INTERNAL", "message": "priority lookup crashed", "retriable": True}
    return _answer_error_when(app, bad, 500, error)


def explicit_best_effort_refused(app: App) -> App:
    """A valid task naming ``"determinism": "best_effort"`` gets 400 ``INVALID_PARAMS``.

    Well formed and a declared status, so only the check that valid input is
    accepted (Schemathesis's ``positive_data_acceptance``) can see it (ORCH-0042).
    """

    def named(document: Any) -> bool:
        params = document.get("params") if isinstance(document, dict) else None
        return isinstance(params, dict) and params.get("determinism") == "best_effort"

    error = {"kind": "INVALID_PARAMS", "message": "params.determinism: refused", "retriable": False}
    return _answer_error_when(app, named, 400, error)


def retry_after_dropped(app: App) -> App:
    """429 and 503 answers lose their ``Retry-After`` header (ORCH-0021)."""

    def change(status: int, headers: Headers) -> Headers:
        return without(headers, b"retry-after") if status in (429, 503) else headers

    return rewrite_headers(app, change)


def retry_after_inconsistent(app: App) -> App:
    """429 and 503 answers say ``Retry-After: 7`` whatever ``X-Backoff-Ms`` says (ORCH-0023)."""

    def change(status: int, headers: Headers) -> Headers:
        if status not in (429, 503):
            return headers
        return [(k, b"7" if k.lower() == b"retry-after" else v) for k, v in headers]

    return rewrite_headers(app, change)


def envelope_dropped(app: App) -> App:
    """404 answers become FastAPI's bare ``{"detail": "Not Found"}`` (ORCH-0014)."""

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        return status, b'{"detail":"Not Found"}'

    return rewrite_response(app, change, statuses=frozenset({404}))


def sse_duplicate_id(app: App) -> App:
    """The second event of every stream repeats id 1 (ORCH-0072)."""

    def change(chunk: bytes) -> bytes:
        return chunk.replace(b"id: 2\n", b"id: 1\n")

    return rewrite_chunks(app, change, matching(path=".*/stream"))


def decision_without_decided_at(app: App) -> App:
    """A decided checkpoint is answered without its ``decided_at`` (ORCH-0366): only a
    decision that succeeds shows it, which the stateful walk reaches."""
    decide = matching("POST", "/v1/runs/[^/]+/checkpoints/[^/]+")

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        if status != 200:
            return status, body
        approval = json.loads(body)
        approval.pop("decided_at", None)
        return status, json.dumps(approval).encode()

    return rewrite_response(app, change, decide)


def run_event_with_an_extra_field(app: App) -> App:
    """Every ``step.succeeded`` of a run's stream also carries ``tokens_out`` (ORCH-0351)."""

    def change(chunk: bytes) -> bytes:
        return chunk.replace(b'"output": ', b'"tokens_out": 2, "output": ')

    return rewrite_chunks(app, change, matching(path="/v1/runs/[^/]+/events"))


class StreamBrokenOff(Exception):
    """What :func:`stream_broken_off` raises to drop a response it has started."""


def stream_broken_off(app: App) -> App:
    """Every stream drops its connection after its first chunk, unclosed by an event (ORCH-0081)."""
    applies = matching(path=".*/stream")

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope):
            await app(scope, receive, send)
            return

        async def cut(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and message.get("more_body"):
                raise StreamBrokenOff("the connection drops in the middle of the stream")

        await app(scope, receive, cut)

    return mutant


WARMING_POOL = [{"pool_id": "default", "replicas": [{"replica_id": "r1", "warmup_ms": 3_600_000}]}]
"""A pool that stays warming: ``/readyz`` and admissions answer 503 ``POOL_UNREADY``."""
WARMING = {"pools": WARMING_POOL, "ready": ()}
"""``orch_serve`` keywords of a server with that pool, started without waiting for it."""

MUTANTS: dict[str, tuple[Wrap, dict[str, Any], str, str]] = {
    "500 on an invalid priority": (
        server_error_on_bad_priority, {}, "test_operation_meets_contract and createTask",
        "ORCH-0017",
    ),
    "valid best_effort task refused with 400": (
        explicit_best_effort_refused, {}, "test_operation_meets_contract and createTask",
        "ORCH-0042",
    ),
    "503 without Retry-After": (
        retry_after_dropped, WARMING, "test_operation_meets_contract and readyz",
        "ORCH-0021",
    ),
    "Retry-After not derived from X-Backoff-Ms": (
        retry_after_inconsistent, WARMING,
        "test_operation_meets_contract and readyz", "ORCH-0023",
    ),
    "404 without the error envelope": (
        envelope_dropped, {}, "test_operation_meets_contract and getTask", "ORCH-0014",
    ),
    "stream with a duplicate event id": (
        sse_duplicate_id, {}, "test_linked_workflow_meets_contract", "ORCH-0072",
    ),
    "stream broken off before its closing event": (
        stream_broken_off, {}, "test_linked_workflow_meets_contract", "ORCH-0081",
    ),
    "run event data with a field the table does not list": (
        run_event_with_an_extra_field, {}, "test_linked_runs_workflow_meets_contract",
        "ORCH-0351",
    ),
    "checkpoint decision without its decided_at": (
        decision_without_decided_at, {}, "test_linked_checkpoint_workflow_meets_contract",
        "ORCH-0366",
    ),
}  # fmt: skip
"""name -> (wrap_app, orch_serve config, ``-k`` selection of the fuzz suite, ORCH ID it breaks)."""

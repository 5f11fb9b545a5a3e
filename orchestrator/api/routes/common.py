"""What the routes of every resource share: OpenAPI declarations of errors, links and
``Location``, the response class, and the orchestrator and event stream of a request."""

from __future__ import annotations

from typing import Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from orchestrator.api.contract import SSE_MEDIA_TYPE
from orchestrator.api.sse import event_stream, parse_last_event_id
from orchestrator.errors import ApiError
from orchestrator.runtime import Orchestrator, StreamSource
from orchestrator.runtime.audit import ACTOR_HEADER, ACTOR_PATTERN
from orchestrator.schemas import ErrorEnvelope
from orchestrator.vocabulary import ErrorKind

_BACKOFF_HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (integer, at least 1).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-Backoff-Ms": {
        "description": "Milliseconds to wait before retrying, with jitter.",
        "schema": {"type": "integer", "minimum": 1},
    },
}


BUSY = "Connection limit reached (SERVER_BUSY) or database cannot be written (STORAGE_UNAVAILABLE)."


def error_responses(*statuses: int, busy: str = BUSY) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer.

    Every ``/v1/`` operation can answer 503: at the connection limit (ORCH-0166)
    and, for writes, when the database cannot be written (ORCH-0170).
    """
    described = {
        400: "Invalid parameters or malformed JSON (INVALID_PARAMS), or a run definition "
        "refused (INVALID_DEFINITION).",
        401: "Missing or wrong bearer token (UNAUTHORIZED).",
        404: "Unknown resource (NOT_FOUND).",
        409: "Conflict with the resource state (CONFLICT).",
        410: "Session past its TTL (SESSION_EXPIRED).",
        413: "Request body over the limit (PAYLOAD_TOO_LARGE).",
        415: "Request body is not JSON (UNSUPPORTED_MEDIA_TYPE).",
        429: "Queue full (ADMISSION_REJECT or QUEUE_FULL_DROP_LRU).",
        503: busy,
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": described[status]}
        if status in (429, 503):
            entry["headers"] = _BACKOFF_HEADERS
        out[status] = entry
    return out


# Every operation declares, as ``openapi_extra={"x-req-id": [...]}``, the sorted
# ORCH IDs of the spec it implements; `orchq openapi regen` refuses the document
# when an ID is unknown, deleted or missing, so the contract and the spec stay linked.


def links(parameter: str, expression: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links passing ``expression`` as ``parameter`` to each operation.

    They chain session -> task -> status -> stream -> cancel, the paths a
    stateful fuzzer (Schemathesis) follows with real IDs instead of random ones.
    """
    return {
        "links": {
            operation[0].upper() + operation[1:]: {
                "operationId": operation,
                "parameters": {parameter: expression},
            }
            for operation in operations
        }
    }


def location_header(template: str, requirement: str) -> dict[str, Any]:
    """The ``Location`` header of a created resource, as the OpenAPI document declares it."""
    pattern = "^" + template.replace("{id}", "[^/]+") + "$"
    return {
        "Location": {
            "description": f"The new resource, `{template}` ({requirement}).",
            "required": True,
            "schema": {"type": "string", "pattern": pattern},
        }
    }


ACTOR = Header(
    alias=ACTOR_HEADER,
    min_length=1,
    max_length=128,
    pattern=ACTOR_PATTERN,
    description="Who makes the request, for the run's audit log (ORCH-0382); "
    "`anonymous` when absent.",
)
V1 = (401, 503)
WITH_BODY = (400, 401, 413, 415, 503)


class WireResponse(JSONResponse):
    """A response whose content is a wire model, encoded by the model's own serializer."""

    def render(self, content: BaseModel) -> bytes:
        return content.model_dump_json().encode()


def orchestrator_of(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


def event_stream_response(source: StreamSource, after: int, request: Request) -> StreamingResponse:
    """The SSE response of a task's or a run's events after ``after`` (sections 5, 12.5)."""
    config = orchestrator_of(request).config
    return StreamingResponse(
        event_stream(
            source,
            after=after,
            retry_ms=config.sse_retry_ms,
            ping_s=config.sse_ping_interval_ms / 1000,
        ),
        media_type=SSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def last_event_after(last_event_id: str | None) -> int:
    after = parse_last_event_id(last_event_id)
    if after is None:
        raise ApiError(ErrorKind.INVALID_PARAMS, "Last-Event-ID must be a non-negative integer")
    return after

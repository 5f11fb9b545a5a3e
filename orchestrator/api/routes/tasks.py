"""Tasks (spec sections 4, 5): admit, read, cancel, stream.

``POST /v1/tasks``, the busiest operation, validates its body itself, from the
JSON bytes with the same model (``model_validate_json``: no intermediate dict),
and declares it with :func:`~orchestrator.api.contract.json_body`, so the OpenAPI
document states the same request body either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from orchestrator.api.contract import SSE_MEDIA_TYPE, json_body, stream_content
from orchestrator.api.errors import invalid_params
from orchestrator.api.routes.common import (
    V1,
    WITH_BODY,
    WireResponse,
    error_responses,
    event_stream_response,
    last_event_after,
    links,
    location_header,
    orchestrator_of,
)
from orchestrator.schemas import Task, TaskAdmitted, TaskCreate

router = APIRouter()

_TASK_LINKS = links("task_id", "$response.body#/task_id", "getTask", "streamTask", "cancelTask")
_STREAM_LINKS = links("task_id", "$request.path.task_id", "getTask", "cancelTask")
_ADMISSION_503 = (
    "Pool not ready or unavailable (POOL_UNREADY, POOL_UNAVAILABLE), database cannot be "
    "written (STORAGE_UNAVAILABLE) or connection limit reached (SERVER_BUSY)."
)


@router.post(
    "/v1/tasks",
    status_code=202,
    response_model=TaskAdmitted,
    responses={
        202: {**_TASK_LINKS, "headers": location_header("/v1/tasks/{id}", "ORCH-0042")},
        **error_responses(*WITH_BODY, 404, 410, 429, busy=_ADMISSION_503),
    },
    operation_id="createTask",
    openapi_extra={
        "requestBody": json_body(TaskCreate),
        "x-req-id": [
            "ORCH-0038",
            "ORCH-0039",
            "ORCH-0040",
            "ORCH-0041",
            "ORCH-0042",
            "ORCH-0043",
            "ORCH-0044",
            "ORCH-0045",
            "ORCH-0046",
            "ORCH-0047",
            "ORCH-0048",
            "ORCH-0049",
            "ORCH-0050",
            "ORCH-0095",
            "ORCH-0096",
            "ORCH-0098",
        ],
    },
    tags=["tasks"],
)
async def create_task(request: Request) -> WireResponse:
    """Admit a task into its pool's queue."""
    try:
        body = TaskCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        raise invalid_params(exc.errors()) from None
    view = await orchestrator_of(request).admit(body)
    return WireResponse(view, 202, headers={"Location": f"/v1/tasks/{view.task_id}"})


@router.get(
    "/v1/tasks/{task_id}",
    response_model=Task,
    responses={200: _TASK_LINKS, **error_responses(*V1, 404)},
    operation_id="getTask",
    openapi_extra={
        "x-req-id": [
            "ORCH-0035",
            "ORCH-0051",
            "ORCH-0052",
            "ORCH-0053",
            "ORCH-0054",
            "ORCH-0055",
            "ORCH-0056",
            "ORCH-0057",
            "ORCH-0058",
            "ORCH-0100",
        ]
    },
    tags=["tasks"],
)
async def get_task(request: Request, task_id: str) -> WireResponse:
    """Task status, attempts and error, if any."""
    return WireResponse(orchestrator_of(request).get_task(task_id))


@router.delete(
    "/v1/tasks/{task_id}",
    response_model=Task,
    responses={200: _TASK_LINKS, **error_responses(*V1, 404, 409)},
    operation_id="cancelTask",
    openapi_extra={"x-req-id": ["ORCH-0058", "ORCH-0066", "ORCH-0067", "ORCH-0068", "ORCH-0069"]},
    tags=["tasks"],
)
async def cancel_task(request: Request, task_id: str) -> WireResponse:
    """Cancel a queued or running task; 409 if it already ended."""
    return WireResponse(orchestrator_of(request).cancel_task(task_id))


@router.get(
    "/v1/tasks/{task_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: a `retry:` field first, then `started`, "
            "`token` ... and one closing `end` or `error`, each with `id:`, `event:` and a "
            "JSON `data:` line.",
            "content": {SSE_MEDIA_TYPE: stream_content()},
            **_STREAM_LINKS,
        },
        **error_responses(*V1, 400, 404),
    },
    operation_id="streamTask",
    openapi_extra={
        "x-req-id": [
            "ORCH-0058",
            "ORCH-0070",
            "ORCH-0071",
            "ORCH-0072",
            "ORCH-0073",
            "ORCH-0074",
            "ORCH-0075",
            "ORCH-0076",
            "ORCH-0077",
            "ORCH-0078",
            "ORCH-0079",
            "ORCH-0080",
            "ORCH-0081",
            "ORCH-0082",
            "ORCH-0083",
            "ORCH-0084",
            "ORCH-0085",
            "ORCH-0086",
            "ORCH-0087",
            "ORCH-0117",
            "ORCH-0200",
        ]
    },
    tags=["tasks"],
)
async def stream_task(
    request: Request,
    task_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The task's event stream; resumable with ``Last-Event-ID``."""
    after = last_event_after(last_event_id)
    source = orchestrator_of(request).open_stream(task_id, after)
    return event_stream_response(source, after, request)

"""Runs (spec sections 12.3, 12.5): create, list, read, abort, stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from orchestrator.api.contract import RUN_STREAM, SSE_MEDIA_TYPE, stream_content
from orchestrator.api.routes.common import (
    ACTOR,
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
from orchestrator.runtime.audit import actor_of
from orchestrator.runtime.runs import MAX_LIST_LIMIT
from orchestrator.schemas import NAME_PATTERN, Run, RunCreate, RunList
from orchestrator.vocabulary import RunState

router = APIRouter()

_RUN_LINKS = links("run_id", "$response.body#/run_id", "getRun", "streamRun", "abortRun")
_RUN_LINKS["links"]["ListPendingApprovals"] = {
    "operationId": "listApprovals",
    "parameters": {"run_id": "$response.body#/run_id", "state": "pending"},
}


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=Run,
    responses={
        202: {**_RUN_LINKS, "headers": location_header("/v1/runs/{id}", "ORCH-0317")},
        **error_responses(*WITH_BODY, 404, 410),
    },
    operation_id="createRun",
    openapi_extra={
        "x-req-id": [
            "ORCH-0310",
            "ORCH-0316",
            "ORCH-0317",
            "ORCH-0318",
            "ORCH-0319",
            "ORCH-0381",
            "ORCH-0382",
        ]
    },
    tags=["runs"],
)
async def create_run(
    request: Request,
    body: RunCreate,
    x_orch_actor: Annotated[str | None, ACTOR] = None,
) -> WireResponse:
    """Start a run of a registered definition."""
    view = orchestrator_of(request).create_run(body, actor_of(x_orch_actor))
    return WireResponse(view, 202, headers={"Location": f"/v1/runs/{view.run_id}"})


@router.get(
    "/v1/runs",
    response_model=RunList,
    responses=error_responses(*V1, 400),
    operation_id="listRuns",
    openapi_extra={"x-req-id": ["ORCH-0323"]},
    tags=["runs"],
)
async def list_runs(
    request: Request,
    state: RunState | None = None,
    definition: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    created_after: str | None = None,
    created_before: str | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
) -> WireResponse:
    """Runs in creation order, filtered, a page at a time."""
    return WireResponse(
        orchestrator_of(request).list_runs(
            state=state,
            definition=definition,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get(
    "/v1/runs/{run_id}",
    response_model=Run,
    responses={200: _RUN_LINKS, **error_responses(*V1, 404)},
    operation_id="getRun",
    openapi_extra={"x-req-id": ["ORCH-0320", "ORCH-0321", "ORCH-0322"]},
    tags=["runs"],
)
async def get_run(request: Request, run_id: str) -> WireResponse:
    """A run with every step's state, attempts, output and error."""
    return WireResponse(orchestrator_of(request).get_run(run_id))


@router.delete(
    "/v1/runs/{run_id}",
    response_model=Run,
    responses={200: _RUN_LINKS, **error_responses(*V1, 400, 404, 409)},
    operation_id="abortRun",
    openapi_extra={"x-req-id": ["ORCH-0324", "ORCH-0371", "ORCH-0381", "ORCH-0382"]},
    tags=["runs"],
)
async def abort_run(
    request: Request,
    run_id: str,
    x_orch_actor: Annotated[str | None, ACTOR] = None,
) -> WireResponse:
    """Abort a run not ended: its running steps' tasks are cancelled, pending steps skipped."""
    return WireResponse(orchestrator_of(request).abort_run(run_id, actor_of(x_orch_actor)))


@router.get(
    "/v1/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events of the run: a `retry:` field first, then "
            "`run.started`, `step.*` events and one closing `run.completed`, `run.failed` or "
            "`run.aborted`, each with `id:`, `event:` and a JSON `data:` line.",
            "content": {SSE_MEDIA_TYPE: stream_content(RUN_STREAM)},
        },
        **error_responses(*V1, 400, 404),
    },
    operation_id="streamRun",
    openapi_extra={"x-req-id": ["ORCH-0350", "ORCH-0351", "ORCH-0352", "ORCH-0353"]},
    tags=["runs"],
)
async def stream_run(
    request: Request,
    run_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The run's event stream; resumable with ``Last-Event-ID``."""
    after = last_event_after(last_event_id)
    source = orchestrator_of(request).open_run_stream(run_id, after)
    return event_stream_response(source, after, request)

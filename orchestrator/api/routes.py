"""The OrchQueue v1 endpoints.

Handlers are thin: FastAPI decodes and validates the request, the orchestrator
answers with the wire models of :mod:`orchestrator.schemas`, and
:class:`WireResponse` encodes them as they are: the models the OpenAPI document
declares are the ones the server builds, validated when built, not again.

``POST /v1/tasks``, the busiest operation, validates its body itself, from the
JSON bytes with the same model (``model_validate_json``: no intermediate dict),
and declares it with :func:`~orchestrator.api.contract.json_body`, so the OpenAPI
document states the same request body either way.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from orchestrator.api.contract import RUN_STREAM, SSE_MEDIA_TYPE, json_body, stream_content
from orchestrator.api.errors import invalid_params
from orchestrator.api.sse import event_stream, parse_last_event_id
from orchestrator.errors import ApiError
from orchestrator.runs import (
    DefinitionError,
    DefinitionLimits,
    MalformedDocument,
    parse_definition,
)
from orchestrator.runtime import Orchestrator, StreamSource
from orchestrator.runtime.audit import ACTOR_HEADER, ACTOR_PATTERN, actor_of
from orchestrator.runtime.definitions import definition_error
from orchestrator.runtime.runs import MAX_LIST_LIMIT
from orchestrator.schemas import (
    NAME_PATTERN,
    Approval,
    ApprovalList,
    AuditLog,
    CheckpointDecision,
    Definition,
    DefinitionDocument,
    DefinitionList,
    DeliveryList,
    ErrorEnvelope,
    Health,
    Pool,
    PoolList,
    Readiness,
    Routing,
    RoutingUpdate,
    Run,
    RunCreate,
    RunList,
    SessionCreate,
    SessionCreated,
    SessionInfo,
    Task,
    TaskAdmitted,
    TaskCreate,
    Webhook,
    WebhookCreate,
    WebhookList,
)
from orchestrator.vocabulary import CheckpointState, DeliveryState, ErrorKind, RunState

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


_BUSY = (
    "Connection limit reached (SERVER_BUSY) or database cannot be written (STORAGE_UNAVAILABLE)."
)
_ADMISSION_503 = (
    "Pool not ready or unavailable (POOL_UNREADY, POOL_UNAVAILABLE), database cannot be "
    "written (STORAGE_UNAVAILABLE) or connection limit reached (SERVER_BUSY)."
)


def _errors(*statuses: int, busy: str = _BUSY) -> dict[int | str, dict[str, Any]]:
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


def _links(parameter: str, expression: str, *operations: str) -> dict[str, Any]:
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


_SESSION_LINKS = _links("session_id", "$response.body#/session_id", "getSession", "deleteSession")
_SESSION_LINKS["links"]["CreateTask"] = {
    "operationId": "createTask",
    "requestBody": {"session_id": "$response.body#/session_id"},
}
_TASK_LINKS = _links("task_id", "$response.body#/task_id", "getTask", "streamTask", "cancelTask")


def _location(template: str, requirement: str) -> dict[str, Any]:
    """The ``Location`` header of a created resource, as the OpenAPI document declares it."""
    pattern = "^" + template.replace("{id}", "[^/]+") + "$"
    return {
        "Location": {
            "description": f"The new resource, `{template}` ({requirement}).",
            "required": True,
            "schema": {"type": "string", "pattern": pattern},
        }
    }


_STREAM_LINKS = _links("task_id", "$request.path.task_id", "getTask", "cancelTask")
_RUN_LINKS = _links("run_id", "$response.body#/run_id", "getRun", "streamRun", "abortRun")
_DEFINITION_LINKS = _links("name", "$response.body#/name", "getDefinition")
_DEFINITION_LINKS["links"]["GetDefinition"]["parameters"]["version"] = "$response.body#/version"

READINESS_WAIT_MS = 1000
"""The suggested wait of a 503 from ``/readyz``."""

_ACTOR = Header(
    alias=ACTOR_HEADER,
    min_length=1,
    max_length=128,
    pattern=ACTOR_PATTERN,
    description="Who makes the request, for the run's audit log (ORCH-0382); "
    "`anonymous` when absent.",
)
_V1 = (401, 503)
_WITH_BODY = (400, 401, 413, 415, 503)

router = APIRouter()


class WireResponse(JSONResponse):
    """A response whose content is a wire model, encoded by the model's own serializer."""

    def render(self, content: BaseModel) -> bytes:
        return content.model_dump_json().encode()


def _orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


def _event_stream_response(source: StreamSource, after: int, request: Request) -> StreamingResponse:
    """The SSE response of a task's or a run's events after ``after`` (sections 5, 12.5)."""
    config = _orchestrator(request).config
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


def _after(last_event_id: str | None) -> int:
    after = parse_last_event_id(last_event_id)
    if after is None:
        raise ApiError(ErrorKind.INVALID_PARAMS, "Last-Event-ID must be a non-negative integer")
    return after


# ---------------------------------------------------------------- sessions


@router.post(
    "/v1/sessions",
    status_code=201,
    response_model=SessionCreated,
    responses={
        201: {**_SESSION_LINKS, "headers": _location("/v1/sessions/{id}", "ORCH-0026")},
        **_errors(*_WITH_BODY),
    },
    operation_id="createSession",
    openapi_extra={"x-req-id": ["ORCH-0006", "ORCH-0025", "ORCH-0026"]},
    tags=["sessions"],
)
async def create_session(
    request: Request, body: Annotated[SessionCreate | None, Body()] = None
) -> WireResponse:
    """Create a session; tasks can only be admitted into an existing session."""
    view = _orchestrator(request).create_session(body or SessionCreate())
    return WireResponse(view, 201, headers={"Location": f"/v1/sessions/{view.session_id}"})


@router.get(
    "/v1/sessions/{session_id}",
    response_model=SessionInfo,
    responses=_errors(*_V1, 404, 410),
    operation_id="getSession",
    openapi_extra={
        "x-req-id": ["ORCH-0027", "ORCH-0028", "ORCH-0029", "ORCH-0030", "ORCH-0031", "ORCH-0032"]
    },
    tags=["sessions"],
)
async def get_session(request: Request, session_id: str) -> WireResponse:
    """A session with its TTL and task counts."""
    return WireResponse(_orchestrator(request).get_session(session_id))


@router.delete(
    "/v1/sessions/{session_id}",
    status_code=204,
    responses=_errors(*_V1, 404),
    operation_id="deleteSession",
    openapi_extra={"x-req-id": ["ORCH-0030", "ORCH-0033", "ORCH-0034"]},
    tags=["sessions"],
)
async def delete_session(request: Request, session_id: str) -> Response:
    """End a session; its queued and running tasks end ``cancelled``."""
    _orchestrator(request).delete_session(session_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- tasks


@router.post(
    "/v1/tasks",
    status_code=202,
    response_model=TaskAdmitted,
    responses={
        202: {**_TASK_LINKS, "headers": _location("/v1/tasks/{id}", "ORCH-0042")},
        **_errors(*_WITH_BODY, 404, 410, 429, busy=_ADMISSION_503),
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
    view = await _orchestrator(request).admit(body)
    return WireResponse(view, 202, headers={"Location": f"/v1/tasks/{view.task_id}"})


@router.get(
    "/v1/tasks/{task_id}",
    response_model=Task,
    responses={200: _TASK_LINKS, **_errors(*_V1, 404)},
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
    return WireResponse(_orchestrator(request).get_task(task_id))


@router.delete(
    "/v1/tasks/{task_id}",
    response_model=Task,
    responses={200: _TASK_LINKS, **_errors(*_V1, 404, 409)},
    operation_id="cancelTask",
    openapi_extra={"x-req-id": ["ORCH-0058", "ORCH-0066", "ORCH-0067", "ORCH-0068", "ORCH-0069"]},
    tags=["tasks"],
)
async def cancel_task(request: Request, task_id: str) -> WireResponse:
    """Cancel a queued or running task; 409 if it already ended."""
    return WireResponse(_orchestrator(request).cancel_task(task_id))


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
        **_errors(*_V1, 400, 404),
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
    after = _after(last_event_id)
    source = _orchestrator(request).open_stream(task_id, after)
    return _event_stream_response(source, after, request)


# ---------------------------------------------------------------- pools & routing


@router.get(
    "/v1/pools",
    response_model=PoolList,
    responses=_errors(*_V1),
    operation_id="listPools",
    openapi_extra={"x-req-id": ["ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122", "ORCH-0123"]},
    tags=["pools"],
)
async def list_pools(request: Request) -> WireResponse:
    """Every pool with its replicas, readiness, capacity and overflow policy."""
    return WireResponse(_orchestrator(request).pools_view())


@router.get(
    "/v1/pools/{pool_id}",
    response_model=Pool,
    responses=_errors(*_V1, 404),
    operation_id="getPool",
    openapi_extra={"x-req-id": ["ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122", "ORCH-0123"]},
    tags=["pools"],
)
async def get_pool(request: Request, pool_id: str) -> WireResponse:
    """One pool."""
    return WireResponse(_orchestrator(request).pool_view(pool_id))


@router.get(
    "/v1/admin/routing",
    response_model=Routing,
    responses=_errors(*_V1),
    operation_id="getRouting",
    openapi_extra={"x-req-id": ["ORCH-0124", "ORCH-0128"]},
    tags=["admin"],
)
async def get_routing(request: Request) -> WireResponse:
    """The persisted routing fallback mode."""
    return WireResponse(_orchestrator(request).routing())


@router.put(
    "/v1/admin/routing",
    response_model=Routing,
    responses=_errors(*_WITH_BODY),
    operation_id="setRouting",
    openapi_extra={"x-req-id": ["ORCH-0125", "ORCH-0126", "ORCH-0127"]},
    tags=["admin"],
)
async def set_routing(request: Request, body: RoutingUpdate) -> WireResponse:
    """Change the routing fallback mode; persisted across restarts."""
    return WireResponse(_orchestrator(request).set_fallback_mode(body.fallback_mode))


# ---------------------------------------------------------------- runs (spec section 12)


@router.post(
    "/v1/definitions",
    status_code=201,
    response_model=Definition,
    responses={
        200: {
            "model": Definition,
            "description": "The same document was already registered under this name and "
            "version (ORCH-0313).",
            **_DEFINITION_LINKS,
            "headers": _location("/v1/definitions/{id}/versions/{id}", "ORCH-0312"),
        },
        201: {
            **_DEFINITION_LINKS,
            "headers": _location("/v1/definitions/{id}/versions/{id}", "ORCH-0312"),
        },
        **_errors(*_WITH_BODY, 409),
    },
    operation_id="registerDefinition",
    openapi_extra={
        "requestBody": json_body(DefinitionDocument),
        "x-req-id": [
            "ORCH-0300",
            "ORCH-0301",
            "ORCH-0302",
            "ORCH-0303",
            "ORCH-0304",
            "ORCH-0305",
            "ORCH-0306",
            "ORCH-0307",
            "ORCH-0308",
            "ORCH-0309",
            "ORCH-0312",
            "ORCH-0313",
        ],
    },
    tags=["runs"],
)
async def register_definition(request: Request) -> WireResponse:
    """Register a run definition; name@version is immutable."""
    orchestrator = _orchestrator(request)
    config = orchestrator.config
    try:
        parsed = parse_definition(
            await request.body(),
            DefinitionLimits(config.max_run_steps, config.max_definition_bytes),
        )
    except DefinitionError as exc:
        raise definition_error(exc) from None
    except MalformedDocument as exc:
        raise ApiError(ErrorKind.INVALID_PARAMS, str(exc)) from None
    view, created = orchestrator.register_definition(parsed)
    location = f"/v1/definitions/{view.name}/versions/{view.version}"
    return WireResponse(view, 201 if created else 200, headers={"Location": location})


@router.get(
    "/v1/definitions",
    response_model=DefinitionList,
    responses=_errors(*_V1),
    operation_id="listDefinitions",
    openapi_extra={"x-req-id": ["ORCH-0314"]},
    tags=["runs"],
)
async def list_definitions(request: Request) -> WireResponse:
    """Every registered definition, by name and version."""
    return WireResponse(_orchestrator(request).list_definitions())


@router.get(
    "/v1/definitions/{name}/versions/{version}",
    response_model=Definition,
    responses=_errors(*_V1, 404),
    operation_id="getDefinition",
    openapi_extra={"x-req-id": ["ORCH-0314"]},
    tags=["runs"],
)
async def get_definition(request: Request, name: str, version: str) -> WireResponse:
    """One registered definition, with every default filled in."""
    return WireResponse(_orchestrator(request).get_definition(name, version))


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=Run,
    responses={
        202: {**_RUN_LINKS, "headers": _location("/v1/runs/{id}", "ORCH-0317")},
        **_errors(*_WITH_BODY, 404, 410),
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
    x_orch_actor: Annotated[str | None, _ACTOR] = None,
) -> WireResponse:
    """Start a run of a registered definition."""
    view = _orchestrator(request).create_run(body, actor_of(x_orch_actor))
    return WireResponse(view, 202, headers={"Location": f"/v1/runs/{view.run_id}"})


@router.get(
    "/v1/runs",
    response_model=RunList,
    responses=_errors(*_V1, 400),
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
        _orchestrator(request).list_runs(
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
    responses={200: _RUN_LINKS, **_errors(*_V1, 404)},
    operation_id="getRun",
    openapi_extra={"x-req-id": ["ORCH-0320", "ORCH-0321", "ORCH-0322"]},
    tags=["runs"],
)
async def get_run(request: Request, run_id: str) -> WireResponse:
    """A run with every step's state, attempts, output and error."""
    return WireResponse(_orchestrator(request).get_run(run_id))


@router.delete(
    "/v1/runs/{run_id}",
    response_model=Run,
    responses={200: _RUN_LINKS, **_errors(*_V1, 400, 404, 409)},
    operation_id="abortRun",
    openapi_extra={"x-req-id": ["ORCH-0324", "ORCH-0371", "ORCH-0381", "ORCH-0382"]},
    tags=["runs"],
)
async def abort_run(
    request: Request,
    run_id: str,
    x_orch_actor: Annotated[str | None, _ACTOR] = None,
) -> WireResponse:
    """Abort a run not ended: its running steps' tasks are cancelled, pending steps skipped."""
    return WireResponse(_orchestrator(request).abort_run(run_id, actor_of(x_orch_actor)))


@router.post(
    "/v1/runs/{run_id}/checkpoints/{checkpoint_id}",
    response_model=Approval,
    responses=_errors(*_WITH_BODY, 404, 409),
    operation_id="decideCheckpoint",
    openapi_extra={
        "x-req-id": [
            "ORCH-0366",
            "ORCH-0367",
            "ORCH-0368",
            "ORCH-0369",
            "ORCH-0370",
            "ORCH-0381",
        ]
    },
    tags=["runs"],
)
async def decide_checkpoint(
    request: Request, run_id: str, checkpoint_id: str, body: CheckpointDecision
) -> WireResponse:
    """Decide a pending checkpoint of a run: continue, retry or abort."""
    return WireResponse(_orchestrator(request).decide_checkpoint(run_id, checkpoint_id, body))


@router.get(
    "/v1/approvals",
    response_model=ApprovalList,
    responses=_errors(*_V1, 400),
    operation_id="listApprovals",
    openapi_extra={"x-req-id": ["ORCH-0364", "ORCH-0365"]},
    tags=["runs"],
)
async def list_approvals(
    request: Request,
    state: CheckpointState | None = None,
    run_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
) -> WireResponse:
    """Checkpoints of every run in the order they were requested, a page at a time."""
    return WireResponse(
        _orchestrator(request).list_approvals(
            state=state, run_id=run_id, cursor=cursor, limit=limit
        )
    )


@router.get(
    "/v1/runs/{run_id}/audit",
    response_model=AuditLog,
    responses=_errors(*_V1, 404),
    operation_id="getRunAudit",
    openapi_extra={"x-req-id": ["ORCH-0380", "ORCH-0381", "ORCH-0383"]},
    tags=["runs"],
)
async def get_run_audit(request: Request, run_id: str) -> WireResponse:
    """The run's audit log: who created it, decided its checkpoints, aborted it."""
    return WireResponse(_orchestrator(request).run_audit(run_id))


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
        **_errors(*_V1, 400, 404),
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
    after = _after(last_event_id)
    source = _orchestrator(request).open_run_stream(run_id, after)
    return _event_stream_response(source, after, request)


# ---------------------------------------------------------------- webhooks (spec section 12.9)

_WEBHOOK_LINKS = _links(
    "webhook_id", "$response.body#/webhook_id", "getWebhook", "listDeliveries", "deleteWebhook"
)


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=Webhook,
    responses={
        201: {**_WEBHOOK_LINKS, "headers": _location("/v1/webhooks/{id}", "ORCH-0402")},
        **_errors(*_WITH_BODY),
    },
    operation_id="createWebhook",
    openapi_extra={"x-req-id": ["ORCH-0400", "ORCH-0401", "ORCH-0402", "ORCH-0404"]},
    tags=["webhooks"],
)
async def create_webhook(request: Request, body: WebhookCreate) -> WireResponse:
    """Subscribe a URL to run events; the secret is never shown again."""
    view = _orchestrator(request).webhooks.create(body)
    return WireResponse(view, 201, headers={"Location": f"/v1/webhooks/{view.webhook_id}"})


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    responses=_errors(*_V1),
    operation_id="listWebhooks",
    openapi_extra={"x-req-id": ["ORCH-0403", "ORCH-0404"]},
    tags=["webhooks"],
)
async def list_webhooks(request: Request) -> WireResponse:
    """Every subscription, configured or made through the API."""
    return WireResponse(_orchestrator(request).webhooks.listing())


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=Webhook,
    responses={200: _WEBHOOK_LINKS, **_errors(*_V1, 404)},
    operation_id="getWebhook",
    openapi_extra={"x-req-id": ["ORCH-0403", "ORCH-0404"]},
    tags=["webhooks"],
)
async def get_webhook(request: Request, webhook_id: str) -> WireResponse:
    """One subscription, without its secret."""
    return WireResponse(_orchestrator(request).webhooks.get(webhook_id))


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    responses=_errors(*_V1, 404, 409),
    operation_id="deleteWebhook",
    openapi_extra={"x-req-id": ["ORCH-0405"]},
    tags=["webhooks"],
)
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    """Remove a subscription made through the API, with its deliveries."""
    _orchestrator(request).webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=_errors(*_V1, 400, 404),
    operation_id="listDeliveries",
    openapi_extra={"x-req-id": ["ORCH-0407", "ORCH-0408"]},
    tags=["webhooks"],
)
async def list_deliveries(
    request: Request,
    webhook_id: str,
    state: DeliveryState | None = None,
    run_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
) -> WireResponse:
    """The subscription's delivery log in creation order, a page at a time."""
    return WireResponse(
        _orchestrator(request).webhooks.deliveries(
            webhook_id, state=state, run_id=run_id, cursor=cursor, limit=limit
        )
    )


# ---------------------------------------------------------------- health & metrics


@router.get(
    "/healthz",
    response_model=Health,
    operation_id="healthz",
    openapi_extra={"x-req-id": ["ORCH-0008", "ORCH-0129"]},
    tags=["health"],
)
async def healthz() -> WireResponse:
    """Liveness: the process answers."""
    return WireResponse(Health(status="ok"))


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=_errors(503, busy="A pool has no ready replica (POOL_UNREADY)."),
    operation_id="readyz",
    openapi_extra={"x-req-id": ["ORCH-0008", "ORCH-0130"]},
    tags=["health"],
)
async def readyz(request: Request) -> WireResponse:
    """Readiness: every pool has at least one ready replica."""
    orchestrator = _orchestrator(request)
    pools = orchestrator.readiness()
    if not all(pools.values()):
        unready = sorted(p for p, ready in pools.items() if not ready)
        raise ApiError(
            ErrorKind.POOL_UNREADY,
            f"pools not ready: {', '.join(unready)}",
            backoff_ms=READINESS_WAIT_MS,
            details={"pools": pools},
        )
    return WireResponse(Readiness(status="ready", pools=pools))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    operation_id="metrics",
    openapi_extra={
        "x-req-id": [
            "ORCH-0008",
            "ORCH-0131",
            "ORCH-0132",
            "ORCH-0133",
            "ORCH-0134",
            "ORCH-0135",
            "ORCH-0136",
        ]
    },
    tags=["health"],
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics, names prefixed ``orchq_``."""
    from orchestrator.metrics import CONTENT_TYPE

    return Response(_orchestrator(request).metrics.exposition(), media_type=CONTENT_TYPE)

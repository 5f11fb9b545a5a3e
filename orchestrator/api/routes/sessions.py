"""Sessions (spec section 3): create, read, end."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from orchestrator.api.routes.common import (
    V1,
    WITH_BODY,
    WireResponse,
    error_responses,
    links,
    location_header,
    orchestrator_of,
)
from orchestrator.schemas import SessionCreate, SessionCreated, SessionInfo

router = APIRouter()

_SESSION_LINKS = links("session_id", "$response.body#/session_id", "getSession", "deleteSession")
_SESSION_LINKS["links"]["CreateTask"] = {
    "operationId": "createTask",
    "requestBody": {"session_id": "$response.body#/session_id"},
}


@router.post(
    "/v1/sessions",
    status_code=201,
    response_model=SessionCreated,
    responses={
        201: {**_SESSION_LINKS, "headers": location_header("/v1/sessions/{id}", "ORCH-0026")},
        **error_responses(*WITH_BODY),
    },
    operation_id="createSession",
    openapi_extra={"x-req-id": ["ORCH-0006", "ORCH-0025", "ORCH-0026"]},
    tags=["sessions"],
)
async def create_session(
    request: Request, body: Annotated[SessionCreate | None, Body()] = None
) -> WireResponse:
    """Create a session; tasks can only be admitted into an existing session."""
    view = orchestrator_of(request).create_session(body or SessionCreate())
    return WireResponse(view, 201, headers={"Location": f"/v1/sessions/{view.session_id}"})


@router.get(
    "/v1/sessions/{session_id}",
    response_model=SessionInfo,
    responses=error_responses(*V1, 404, 410),
    operation_id="getSession",
    openapi_extra={
        "x-req-id": ["ORCH-0027", "ORCH-0028", "ORCH-0029", "ORCH-0030", "ORCH-0031", "ORCH-0032"]
    },
    tags=["sessions"],
)
async def get_session(request: Request, session_id: str) -> WireResponse:
    """A session with its TTL and task counts."""
    return WireResponse(orchestrator_of(request).get_session(session_id))


@router.delete(
    "/v1/sessions/{session_id}",
    status_code=204,
    responses=error_responses(*V1, 404),
    operation_id="deleteSession",
    openapi_extra={"x-req-id": ["ORCH-0030", "ORCH-0033", "ORCH-0034"]},
    tags=["sessions"],
)
async def delete_session(request: Request, session_id: str) -> Response:
    """End a session; its queued and running tasks end ``cancelled``."""
    orchestrator_of(request).delete_session(session_id)
    return Response(status_code=204)

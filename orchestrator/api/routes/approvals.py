"""Checkpoints and the audit log (spec sections 12.6, 12.7): decide, list, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from orchestrator.api.routes.common import (
    V1,
    WITH_BODY,
    WireResponse,
    error_responses,
    links,
    orchestrator_of,
)
from orchestrator.runtime.runs import MAX_LIST_LIMIT
from orchestrator.schemas import Approval, ApprovalList, AuditLog, CheckpointDecision
from orchestrator.vocabulary import CheckpointState

router = APIRouter()

_APPROVAL_LINKS = {
    "links": {
        "DecideCheckpoint": {
            "operationId": "decideCheckpoint",
            "parameters": {
                "run_id": "$response.body#/approvals/0/run_id",
                "checkpoint_id": "$response.body#/approvals/0/checkpoint_id",
            },
        }
    }
}
_DECIDED_LINKS = links("run_id", "$response.body#/run_id", "getRun", "getRunAudit")


@router.post(
    "/v1/runs/{run_id}/checkpoints/{checkpoint_id}",
    response_model=Approval,
    responses={200: _DECIDED_LINKS, **error_responses(*WITH_BODY, 404, 409)},
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
    return WireResponse(orchestrator_of(request).decide_checkpoint(run_id, checkpoint_id, body))


@router.get(
    "/v1/approvals",
    response_model=ApprovalList,
    responses={200: _APPROVAL_LINKS, **error_responses(*V1, 400)},
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
        orchestrator_of(request).list_approvals(
            state=state, run_id=run_id, cursor=cursor, limit=limit
        )
    )


@router.get(
    "/v1/runs/{run_id}/audit",
    response_model=AuditLog,
    responses=error_responses(*V1, 404),
    operation_id="getRunAudit",
    openapi_extra={"x-req-id": ["ORCH-0380", "ORCH-0381", "ORCH-0383"]},
    tags=["runs"],
)
async def get_run_audit(request: Request, run_id: str) -> WireResponse:
    """The run's audit log: who created it, decided its checkpoints, aborted it."""
    return WireResponse(orchestrator_of(request).run_audit(run_id))

"""Liveness, readiness (spec section 8) and the Prometheus metrics (spec section 9)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from orchestrator.api.routes.common import WireResponse, error_responses, orchestrator_of
from orchestrator.errors import ApiError
from orchestrator.schemas import Health, Readiness
from orchestrator.vocabulary import ErrorKind

router = APIRouter()

READINESS_WAIT_MS = 1000
"""The suggested wait of a 503 from ``/readyz``."""


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
    responses=error_responses(503, busy="A pool has no ready replica (POOL_UNREADY)."),
    operation_id="readyz",
    openapi_extra={"x-req-id": ["ORCH-0008", "ORCH-0130"]},
    tags=["health"],
)
async def readyz(request: Request) -> WireResponse:
    """Readiness: every pool has at least one ready replica."""
    orchestrator = orchestrator_of(request)
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

    return Response(orchestrator_of(request).metrics.exposition(), media_type=CONTENT_TYPE)

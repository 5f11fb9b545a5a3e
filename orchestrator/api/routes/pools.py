"""Pools and the routing mode (spec section 8)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from orchestrator.api.routes.common import (
    V1,
    WITH_BODY,
    WireResponse,
    error_responses,
    orchestrator_of,
)
from orchestrator.schemas import Pool, PoolList, Routing, RoutingUpdate

router = APIRouter()


@router.get(
    "/v1/pools",
    response_model=PoolList,
    responses=error_responses(*V1),
    operation_id="listPools",
    openapi_extra={"x-req-id": ["ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122", "ORCH-0123"]},
    tags=["pools"],
)
async def list_pools(request: Request) -> WireResponse:
    """Every pool with its replicas, readiness, capacity and overflow policy."""
    return WireResponse(orchestrator_of(request).pools_view())


@router.get(
    "/v1/pools/{pool_id}",
    response_model=Pool,
    responses=error_responses(*V1, 404),
    operation_id="getPool",
    openapi_extra={"x-req-id": ["ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122", "ORCH-0123"]},
    tags=["pools"],
)
async def get_pool(request: Request, pool_id: str) -> WireResponse:
    """One pool."""
    return WireResponse(orchestrator_of(request).pool_view(pool_id))


@router.get(
    "/v1/admin/routing",
    response_model=Routing,
    responses=error_responses(*V1),
    operation_id="getRouting",
    openapi_extra={"x-req-id": ["ORCH-0124", "ORCH-0128"]},
    tags=["admin"],
)
async def get_routing(request: Request) -> WireResponse:
    """The persisted routing fallback mode."""
    return WireResponse(orchestrator_of(request).routing())


@router.put(
    "/v1/admin/routing",
    response_model=Routing,
    responses=error_responses(*WITH_BODY),
    operation_id="setRouting",
    openapi_extra={"x-req-id": ["ORCH-0125", "ORCH-0126", "ORCH-0127"]},
    tags=["admin"],
)
async def set_routing(request: Request, body: RoutingUpdate) -> WireResponse:
    """Change the routing fallback mode; persisted across restarts."""
    return WireResponse(orchestrator_of(request).set_fallback_mode(body.fallback_mode))

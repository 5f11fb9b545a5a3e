"""Webhooks (spec section 12.9): subscriptions and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
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
from orchestrator.runtime.runs import MAX_LIST_LIMIT
from orchestrator.schemas import DeliveryList, Webhook, WebhookCreate, WebhookList
from orchestrator.vocabulary import DeliveryState

router = APIRouter()


_WEBHOOK_LINKS = links(
    "webhook_id", "$response.body#/webhook_id", "getWebhook", "listDeliveries", "deleteWebhook"
)


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=Webhook,
    responses={
        201: {**_WEBHOOK_LINKS, "headers": location_header("/v1/webhooks/{id}", "ORCH-0402")},
        **error_responses(*WITH_BODY),
    },
    operation_id="createWebhook",
    openapi_extra={"x-req-id": ["ORCH-0400", "ORCH-0401", "ORCH-0402", "ORCH-0404"]},
    tags=["webhooks"],
)
async def create_webhook(request: Request, body: WebhookCreate) -> WireResponse:
    """Subscribe a URL to run events; the secret is never shown again."""
    view = orchestrator_of(request).webhooks.create(body)
    return WireResponse(view, 201, headers={"Location": f"/v1/webhooks/{view.webhook_id}"})


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    responses=error_responses(*V1),
    operation_id="listWebhooks",
    openapi_extra={"x-req-id": ["ORCH-0403", "ORCH-0404"]},
    tags=["webhooks"],
)
async def list_webhooks(request: Request) -> WireResponse:
    """Every subscription, configured or made through the API."""
    return WireResponse(orchestrator_of(request).webhooks.listing())


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=Webhook,
    responses={200: _WEBHOOK_LINKS, **error_responses(*V1, 404)},
    operation_id="getWebhook",
    openapi_extra={"x-req-id": ["ORCH-0403", "ORCH-0404"]},
    tags=["webhooks"],
)
async def get_webhook(request: Request, webhook_id: str) -> WireResponse:
    """One subscription, without its secret."""
    return WireResponse(orchestrator_of(request).webhooks.get(webhook_id))


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    responses=error_responses(*V1, 404, 409),
    operation_id="deleteWebhook",
    openapi_extra={"x-req-id": ["ORCH-0405"]},
    tags=["webhooks"],
)
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    """Remove a subscription made through the API, with its deliveries."""
    orchestrator_of(request).webhooks.delete(webhook_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=error_responses(*V1, 400, 404),
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
        orchestrator_of(request).webhooks.deliveries(
            webhook_id, state=state, run_id=run_id, cursor=cursor, limit=limit
        )
    )

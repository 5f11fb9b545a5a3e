"""The OrchQueue v1 endpoints, one module per resource, included in one router.

Handlers are thin: FastAPI decodes and validates the request, the orchestrator
answers with the wire models of :mod:`orchestrator.schemas`, and
:class:`~orchestrator.api.routes.common.WireResponse` encodes them as they are:
the models the OpenAPI document declares are the ones the server builds,
validated when built, not again. Every operation declares, as
``openapi_extra={"x-req-id": [...]}``, the sorted ORCH IDs it implements.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import BaseRoute

from orchestrator.api.routes import (
    approvals,
    definitions,
    health,
    pools,
    runs,
    sessions,
    tasks,
    webhooks,
)

RESOURCES = (sessions, tasks, pools, definitions, runs, approvals, webhooks, health)
"""In the order their routes are included."""

router = APIRouter()
for resource in RESOURCES:
    router.include_router(resource.router)


def every_route() -> list[BaseRoute]:
    """Every route of every resource (the including router keeps each resource's apart)."""
    return [route for resource in RESOURCES for route in resource.router.routes]

"""Run definitions (spec section 12.2): register, read, list."""

from __future__ import annotations

from fastapi import APIRouter, Request

from orchestrator.api.contract import json_body
from orchestrator.api.routes.common import (
    V1,
    WITH_BODY,
    WireResponse,
    error_responses,
    links,
    location_header,
    orchestrator_of,
)
from orchestrator.errors import ApiError
from orchestrator.runs import DefinitionError, DefinitionLimits, MalformedDocument, parse_definition
from orchestrator.runtime.definitions import definition_error
from orchestrator.schemas import Definition, DefinitionDocument, DefinitionList
from orchestrator.vocabulary import ErrorKind

router = APIRouter()

_DEFINITION_LINKS = links("name", "$response.body#/name", "getDefinition")
_DEFINITION_LINKS["links"]["GetDefinition"]["parameters"]["version"] = "$response.body#/version"


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
            "headers": location_header("/v1/definitions/{id}/versions/{id}", "ORCH-0312"),
        },
        201: {
            **_DEFINITION_LINKS,
            "headers": location_header("/v1/definitions/{id}/versions/{id}", "ORCH-0312"),
        },
        **error_responses(*WITH_BODY, 409),
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
    orchestrator = orchestrator_of(request)
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
    responses=error_responses(*V1),
    operation_id="listDefinitions",
    openapi_extra={"x-req-id": ["ORCH-0314"]},
    tags=["runs"],
)
async def list_definitions(request: Request) -> WireResponse:
    """Every registered definition, by name and version."""
    return WireResponse(orchestrator_of(request).list_definitions())


@router.get(
    "/v1/definitions/{name}/versions/{version}",
    response_model=Definition,
    responses=error_responses(*V1, 404),
    operation_id="getDefinition",
    openapi_extra={"x-req-id": ["ORCH-0314"]},
    tags=["runs"],
)
async def get_definition(request: Request, name: str, version: str) -> WireResponse:
    """One registered definition, with every default filled in."""
    return WireResponse(orchestrator_of(request).get_definition(name, version))

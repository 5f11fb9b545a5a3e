"""What the OpenAPI document states beyond what FastAPI derives from the routes.

FastAPI writes the paths and the request and response models; this module
finishes the document so that a standard tool reading it (Schemathesis's
``st run``) expects exactly what the server does:

- no FastAPI 422 (validation errors are 400 ``INVALID_PARAMS``, declared by
  every operation) and pydantic's exact integer bounds;
- the task and run streams as OpenAPI 3.2 describes ``text/event-stream``: each
  event (``itemSchema``) with its name, id and JSON ``data`` (``contentMediaType``
  and ``contentSchema`` of the wire model the server encodes), selected by a
  discriminator on ``event``, and the whole stream (``schema``) with at most one
  closing event (ORCH section 5, section 12.5);
- the ``Last-Event-ID`` header of the task and run streams with the pattern the server
  accepts (ORCH-0200, ORCH-0350);
- ``X-Request-Id`` on every response (ORCH-0004), so a client or a pact may rely on it.

Invariant: the document is a function of the code alone (no clock, no
database), so ``orchq openapi regen --check`` can compare it byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from orchestrator import schemas as wire
from orchestrator.api.sse import LAST_EVENT_ID_PATTERN
from orchestrator.vocabulary import RUN_CLOSING_EVENTS

OPENAPI_VERSION = "3.2.0"
"""3.2 is the first OpenAPI version that describes the events of a stream (``itemSchema``)."""

STREAM_OPERATION = "streamTask"
RUN_STREAM_OPERATION = "streamRun"
RESUMABLE_OPERATIONS = frozenset({STREAM_OPERATION, RUN_STREAM_OPERATION})
"""The event streams a client resumes with ``Last-Event-ID`` (ORCH-0083, ORCH-0350)."""
SSE_MEDIA_TYPE = "text/event-stream"
EVENT_ID_PATTERN = "^[1-9][0-9]*$"
"""Event ids are the task's sequence numbers 1, 2, 3 ... (ORCH-0072)."""

_REF = "#/components/schemas/{model}"
_FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})


@dataclass(frozen=True)
class EventStream:
    """One kind of event stream: its events' data models and the events that close it."""

    union: str
    """The component that is any one event of the stream (``itemSchema``)."""
    summary: str
    models: Mapping[str, type[BaseModel]]
    closing: tuple[str, ...]
    requirements: str
    """The ORCH IDs of an event's format and of its ``data``."""
    closing_requirement: str


TASK_STREAM = EventStream(
    union="StreamEvent",
    summary="One event of a task stream: `started`, `token`, then `end` or `error`.",
    models=wire.STREAM_EVENT_MODELS,
    closing=("end", "error"),
    requirements="ORCH-0071, ORCH-0076",
    closing_requirement="ORCH-0081",
)
RUN_STREAM = EventStream(
    union="RunStreamEvent",
    summary="One event of a run stream: `run.started`, `step.*`, then `run.completed`, "
    "`run.failed` or `run.aborted` (section 12.5).",
    models=dict(wire.RUN_EVENT_MODELS.items()),
    closing=tuple(sorted(RUN_CLOSING_EVENTS)),
    requirements="ORCH-0350, ORCH-0351",
    closing_requirement="ORCH-0352",
)


def event_schema_name(event: str) -> str:
    """``started`` -> ``StartedEvent``, ``run.started`` -> ``RunStartedEvent``: the
    component describing one event of a stream."""
    return "".join(part.capitalize() for part in event.split(".")) + "Event"


def _event_schema(event: str, data_model: type[BaseModel], stream: EventStream) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"The `{event}` event ({stream.requirements}).",
        "additionalProperties": False,
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "event": {"const": event},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": _REF.format(model=data_model.__name__)},
            },
            "retry": {"type": "integer", "minimum": 0},
        },
    }


def _add_stream_schemas(schemas: dict[str, Any], stream: EventStream) -> None:
    """Add the components of a stream: each event's ``data``, each event, and any event."""
    for event, model in stream.models.items():
        data = model.model_json_schema(ref_template=_REF)
        for nested, nested_schema in data.pop("$defs", {}).items():
            schemas.setdefault(nested, nested_schema)
        schemas[model.__name__] = data
        schemas[event_schema_name(event)] = _event_schema(event, model, stream)
    names = {event: _REF.format(model=event_schema_name(event)) for event in stream.models}
    schemas[stream.union] = {
        "description": stream.summary,
        "oneOf": [{"$ref": ref} for ref in names.values()],
        "discriminator": {"propertyName": "event", "mapping": names},
    }


def stream_content(stream: EventStream = TASK_STREAM) -> dict[str, Any]:
    """The ``text/event-stream`` media type of a stream's 200 response.

    Its ``$ref`` targets are added to the components by :func:`install_openapi`.
    """
    closing = {"required": ["event"], "properties": {"event": {"enum": list(stream.closing)}}}
    names = ", ".join(f"`{event}`" for event in stream.closing)
    return {
        "itemSchema": {"$ref": _REF.format(model=stream.union)},
        "schema": {
            "type": "array",
            "description": f"The events of one response in order; at most one of {names}, "
            f"which closes the stream ({stream.closing_requirement}).",
            "items": {"$ref": _REF.format(model=stream.union)},
            "contains": closing,
            "minContains": 0,
            "maxContains": 1,
        },
    }


def _last_event_id_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": LAST_EVENT_ID_PATTERN,
        "description": "The id of the last event the client received; the stream continues "
        "with the next one (ORCH-0083). Empty is the same as absent (ORCH-0200).",
    }


def _describe_stream(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("operationId") not in RESUMABLE_OPERATIONS:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == "Last-Event-ID":
                    parameter["schema"] = _last_event_id_schema()
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for stream in (TASK_STREAM, RUN_STREAM):
        _add_stream_schemas(schemas, stream)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A required JSON request body of ``model``, for a route that validates its body itself.

    Its schema is added to the components by :func:`install_openapi`.
    """
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"content": {"application/json": {"schema": schema}}, "required": True}


def _referenced(node: Any) -> set[str]:
    """The component names ``node``'s ``$ref`` values point at."""
    if isinstance(node, dict):
        found = {str(node["$ref"]).rsplit("/", 1)[1]} if "$ref" in node else set()
        for value in node.values():
            found |= _referenced(value)
        return found
    if isinstance(node, list):
        return set().union(*(_referenced(item) for item in node))
    return set()


def _complete_components(document: dict[str, Any]) -> None:
    """Add the wire models that the paths name (:func:`json_body`) but FastAPI did not see."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in sorted(_referenced(document.get("paths", {})) - schemas.keys()):
        model = getattr(wire, name)
        schema = model.model_json_schema(ref_template=_REF)
        for nested, nested_schema in schema.pop("$defs", {}).items():
            schemas.setdefault(nested, nested_schema)
        schemas[name] = schema


def _copy_exact_bounds(target: Any, source: Any) -> None:
    """Put pydantic's exact numeric bounds back where FastAPI made them floats.

    FastAPI's OpenAPI model types ``minimum``/``maximum`` as ``float``: 86400
    becomes ``86400.0`` and the seed's 2**63 - 1 becomes 2**63, a bound the
    server refuses; fuzzers generate exactly such edge values.
    """
    if isinstance(target, dict) and isinstance(source, dict):
        for key, value in source.items():
            if key in _BOUNDS and isinstance(value, int) and key in target:
                target[key] = value
            elif key in target:
                _copy_exact_bounds(target[key], value)
    elif isinstance(target, list) and isinstance(source, list) and len(target) == len(source):
        for item, original in zip(target, source, strict=True):
            _copy_exact_bounds(item, original)


def _without_fastapi_422(document: dict[str, Any]) -> None:
    """Keep FastAPI's default 422 out: the server answers 400 ``INVALID_PARAMS`` instead."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_422_SCHEMAS:
        schemas.pop(name, None)


def _exact_bounds(document: dict[str, Any]) -> None:
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        model = getattr(wire, name, None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            _copy_exact_bounds(schema, model.model_json_schema(ref_template=_REF))


REQUEST_ID_HEADER = {
    "description": "The request's own X-Request-Id when it has one of 1 to 128 characters, "
    "else an ID the server chose (ORCH-0004, ORCH-0243); the error envelope's request_id.",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}


def _declare_request_id(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                # Copies: a YAML dump would write an object met twice as an anchor and aliases.
                headers = copy.deepcopy(response.get("headers", {}))
                headers["X-Request-Id"] = copy.deepcopy(REQUEST_ID_HEADER)
                response["headers"] = headers


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the finished document."""
    # 3.2 only adds to 3.1 (what FastAPI writes), so the version is all that changes.
    app.openapi_version = OPENAPI_VERSION
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            _without_fastapi_422(document)
            _describe_stream(document)
            _complete_components(document)
            _exact_bounds(document)
            _declare_request_id(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

"""Schemathesis checks for OrchQueue v1, and ORCH IDs on every failure.

Built-in checks (status codes, content types, response schemas and
headers, negative data refused) run next to ours (no 500 or undeclared 5xx,
:mod:`harness.fuzz.wire`, :mod:`harness.fuzz.sse`). :func:`validate` runs
the set that fits a response and turns Schemathesis' failure group into one
``AssertionError`` whose every line starts with the ORCH IDs of the broken
requirement, followed by a curl line that reproduces the request.
"""

from __future__ import annotations

from typing import Any

from schemathesis import Case, CheckContext, Response
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import (
    AcceptedNegativeData,
    CustomFailure,
    Failure,
    FailureGroup,
    MalformedJson,
    ServerError,
)
from schemathesis.openapi.checks import (
    JsonSchemaError,
    MalformedMediaType,
    MissingContentType,
    MissingHeaders,
    UndefinedContentType,
    UndefinedStatusCode,
)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.fuzz import requirements as req
from harness.fuzz.sse import stream_problems
from harness.fuzz.wire import (
    backpressure_problems,
    envelope_problems,
    header,
    request_id_problems,
)
from orchestrator.numerals import ascii_int

STREAM_OPERATION = "streamTask"


def operation_id(case: Case[Any]) -> str:
    return str(case.operation.definition.raw.get("operationId", case.operation.label))


def orchq_no_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """ORCH-0017: no 500, and no 5xx the operation does not declare.

    Schemathesis' own ``not_a_server_error`` flags every 5xx, but a 503
    ``POOL_UNREADY`` from a warming pool is the contract working, not a crash.
    """
    status = response.status_code
    declared = {str(code) for code in case.operation.definition.raw.get("responses", {})}
    if status == 500 or (status > 500 and str(status) not in declared):
        raise AssertionError(
            f"ORCH-0017: {operation_id(case)} answered {status}: no 5xx may be caused by what "
            f"the request contains; body: {response.content[:300]!r}"
        )
    return None


def orchq_wire(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """X-Request-Id, the error envelope and kinds, backpressure headers (ORCH 2.1-2.3)."""
    problems = [
        *request_id_problems(response.headers),
        *envelope_problems(response.status_code, response.headers, response.content),
        *backpressure_problems(response.status_code, response.headers),
    ]
    if problems:
        raise AssertionError("\n".join(problems))
    return None


def last_event_id(case: Case[Any]) -> int:
    """The ``Last-Event-ID`` a stream request sent (0 when absent or not a number)."""
    values = header({k: [str(v)] for k, v in (case.headers or {}).items()}, "Last-Event-ID")
    value = ascii_int(values[0]) if values else None
    return 0 if value is None else value


def orchq_stream(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """The SSE format of a 200 stream (ORCH section 5); other responses are not streams."""
    if operation_id(case) != STREAM_OPERATION or response.status_code != 200:
        return None
    content_type = header(response.headers, "Content-Type")
    problems = []
    if not content_type or not content_type[0].startswith("text/event-stream"):
        problems.append(f"ORCH-0070: the stream must be text/event-stream, got {content_type}")
    body = response.text_lossy()
    complete = not response.stream_cut_short
    problems.extend(stream_problems(body, after=last_event_id(case), complete=complete))
    if problems:
        raise AssertionError("\n".join(problems))
    return None


BUILTIN_CHECKS: tuple[CheckFunction, ...] = (
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
)
OUR_CHECKS: tuple[CheckFunction, ...] = (orchq_no_server_error, orchq_wire, orchq_stream)


def checks_for(case: Case[Any], response: Response) -> list[CheckFunction]:
    """Every check, except the JSON schema one on a stream (a stream is not a JSON document)."""
    chosen = [*BUILTIN_CHECKS, *OUR_CHECKS]
    if operation_id(case) == STREAM_OPERATION and response.status_code == 200:
        chosen.remove(response_schema_conformance)
    return chosen


def failure_ids(failure: Failure, operation: str, status: int) -> str:
    """The ORCH IDs a Schemathesis failure breaks ('' when its message already names them)."""
    shape = req.RESPONSE_SHAPES.get(operation, ()) if status < 400 else req.ENVELOPE
    if isinstance(failure, CustomFailure):
        return ""
    if isinstance(failure, ServerError):
        return req.ids(req.NO_SERVER_ERROR)
    if isinstance(failure, AcceptedNegativeData):
        return req.ids(req.INVALID_REFUSED)
    if isinstance(failure, UndefinedStatusCode):
        return req.ids(req.STATUS_CODES)
    if isinstance(failure, MissingHeaders) or (
        isinstance(failure, JsonSchemaError) and "header" in failure.title.lower()
    ):
        return req.ids(req.BACKPRESSURE)
    if isinstance(
        failure, MissingContentType | MalformedMediaType | UndefinedContentType | MalformedJson
    ):
        return req.ids(req.JSON_BODIES)
    return req.ids(shape or req.ENVELOPE)


def describe(group: FailureGroup, case: Case[Any], status: int) -> str:
    """One line per failure, each led by its ORCH IDs, then Schemathesis' own report."""
    operation = operation_id(case)
    lines = []
    for failure in group.exceptions:
        ids = failure_ids(failure, operation, status)
        text = f"{failure.title}: {failure.message}".strip()
        lines.append(f"{ids}: {operation}: {text}" if ids else f"{operation}: {text}")
    return "\n".join(lines) + "\n\n" + str(group.message)


def validate(case: Case[Any], response: Response, **transport: Any) -> None:
    """Run every fitting check on ``response``; raise ``AssertionError`` naming ORCH IDs."""
    __tracebackhide__ = True
    try:
        case.validate_response(
            response, checks=checks_for(case, response), transport_kwargs=transport or None
        )
    except FailureGroup as group:
        raise AssertionError(describe(group, case, response.status_code)) from None

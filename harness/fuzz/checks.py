"""Schemathesis checks for OrchQueue v1, and ORCH IDs on every failure.

Schemathesis's built-in checks, as the project's ``schemathesis.toml`` enables
and configures them (:mod:`harness.fuzz.config`, the same set ``st run`` uses),
run next to ours (:mod:`harness.fuzz.wire`, :mod:`harness.fuzz.sse`).
:func:`validate` turns Schemathesis' failure group into one ``AssertionError``
whose every line starts with the ORCH IDs of the broken requirement, followed
by a curl line that reproduces the request.
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
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.openapi.checks import (
    AllowHeaderMismatch,
    EnsureResourceAvailability,
    JsonSchemaError,
    MalformedMediaType,
    MissingContentType,
    MissingHeaders,
    RejectedPositiveData,
    UndefinedContentType,
    UndefinedStatusCode,
    UnsupportedMethodResponse,
    UseAfterFree,
)

from harness.checks import RequirementFailure, leading_ids, note_passed
from harness.fuzz import requirements as req
from harness.fuzz.sse import RUN_STREAM, TASK_STREAM, StreamRules, stream_problems
from harness.fuzz.wire import (
    backpressure_problems,
    envelope_problems,
    header,
    request_id_problems,
)
from orchestrator.numerals import ascii_int

STREAM_OPERATION = "streamTask"
RUN_STREAM_OPERATION = "streamRun"
STREAM_RULES: dict[str, tuple[StreamRules, str]] = {
    STREAM_OPERATION: (TASK_STREAM, "ORCH-0070"),
    RUN_STREAM_OPERATION: (RUN_STREAM, "ORCH-0350"),
}
"""Each stream operation: its rules, and the requirement of its media type."""


def operation_id(case: Case[Any]) -> str:
    return str(case.operation.definition.raw.get("operationId", case.operation.label))


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
    """The SSE format of a 200 task stream (ORCH section 5) or run stream (ORCH-0350); other
    responses are not streams."""
    operation = operation_id(case)
    if operation not in STREAM_RULES or response.status_code != 200:
        return None
    rules, media_type_rule = STREAM_RULES[operation]
    content_type = header(response.headers, "Content-Type")
    problems = []
    if not content_type or not content_type[0].startswith("text/event-stream"):
        problems.append(
            f"{media_type_rule}: the stream must be text/event-stream, got {content_type}"
        )
    body = response.text_lossy()
    complete = not response.stream_cut_short
    problems.extend(
        stream_problems(body, after=last_event_id(case), complete=complete, rules=rules)
    )
    if problems:
        raise AssertionError("\n".join(problems))
    return None


OUR_CHECKS: tuple[CheckFunction, ...] = (orchq_wire, orchq_stream)
"""Run next to the built-in checks that the project's configuration enables."""


def failure_ids(failure: Failure, operation: str, status: int) -> str:
    """The ORCH IDs a Schemathesis failure breaks ('' when its message already names them)."""
    success = req.RESPONSE_SHAPES.get(operation, ())
    shape = success if status < 400 else req.ENVELOPE
    if isinstance(failure, CustomFailure):
        return ""
    if isinstance(failure, ServerError):
        return req.ids(req.NO_SERVER_ERROR)
    if isinstance(failure, AcceptedNegativeData):
        return req.ids(req.INVALID_REFUSED)
    if isinstance(failure, RejectedPositiveData | EnsureResourceAvailability):
        return req.ids(success or req.STATUS_CODES)
    if isinstance(failure, UseAfterFree):
        return req.ids(req.ENDED_SESSION_GONE)
    if isinstance(failure, UnsupportedMethodResponse | AllowHeaderMismatch):
        return req.ids(req.METHODS)
    if operation == STREAM_OPERATION and status == 200 and isinstance(failure, JsonSchemaError):
        return req.ids(req.STREAM, req.STREAM_DATA)
    if operation == RUN_STREAM_OPERATION and status == 200 and isinstance(failure, JsonSchemaError):
        return req.ids(req.RUN_STREAM, req.RUN_STREAM_DATA)
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


def describe(group: FailureGroup, case: Case[Any], status: int) -> tuple[str, tuple[str, ...]]:
    """One line per failure, each led by its ORCH IDs, then Schemathesis' own report; and
    the IDs of every failure (a check of ours names them at the start of its lines)."""
    operation = operation_id(case)
    lines = []
    blamed: list[str] = []
    for failure in group.exceptions:
        ids = failure_ids(failure, operation, status)
        text = f"{failure.title}: {failure.message}".strip()
        lines.append(f"{ids}: {operation}: {text}" if ids else f"{operation}: {text}")
        named = ids.split("/") if ids else []
        for line in str(failure.message).splitlines():
            named.extend(leading_ids(line))
        blamed.extend(named)
    return "\n".join(lines) + "\n\n" + str(group.message), tuple(dict.fromkeys(blamed))


def checked_ids(case: Case[Any], status: int) -> tuple[str, ...]:
    """The requirements a response that passed every check was checked against."""
    operation = operation_id(case)
    ids = [*req.COMMON, *req.RESPONSE_SHAPES.get(operation, ())]
    if operation == STREAM_OPERATION and status == 200:
        ids += [*req.STREAM, *req.STREAM_DATA]
    if operation == RUN_STREAM_OPERATION and status == 200:
        ids += [*req.RUN_STREAM, *req.RUN_STREAM_DATA]
    return tuple(ids)


def validate(
    case: Case[Any],
    response: Response,
    *,
    recorder: ScenarioRecorder | None = None,
    **transport: Any,
) -> None:
    """Run every check on ``response``; raise ``AssertionError`` naming ORCH IDs (a
    :class:`~harness.checks.RequirementFailure` blamed on them), or note them as checked.

    The built-in checks are those the project's configuration enables for the
    operation, with its expected statuses (exactly what ``st run`` runs), plus
    :data:`OUR_CHECKS`. ``recorder`` holds a stateful scenario's earlier steps,
    which the stateful checks (a read after a ``DELETE``) look up.
    """
    __tracebackhide__ = True
    try:
        case.validate_response(
            response,
            additional_checks=list(OUR_CHECKS),
            transport_kwargs=transport or None,
            recorder=recorder,
        )
    except FailureGroup as group:
        text, ids = describe(group, case, response.status_code)
        if ids:
            raise RequirementFailure(text, ids) from None
        raise AssertionError(text) from None
    note_passed(checked_ids(case, response.status_code))

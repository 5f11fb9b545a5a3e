"""The OpenAPI document and ``schemathesis.toml`` state the server's rules to a standard tool.

Schemathesis (what a consumer runs: ``st run``) judges requests and responses
here with the committed document and configuration, exactly as loaded by the
fuzz suite (:func:`harness.fuzz.runner.load_contract`): real streams pass and
broken ones fail, the ``Last-Event-ID`` pattern is what the server accepts,
``strict`` without a seed is not valid input, 410 is expected for valid input
where the spec says so, and a cancelled task is no use after free.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from typing import Any, get_args

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckFunction, GenerationMode, Response
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from harness import resources
from harness.fuzz.document import contract_path
from harness.fuzz.runner import load_contract
from orchestrator.api.contract import RUN_STREAM, TASK_STREAM, EventStream, event_schema_name
from orchestrator.api.sse import LAST_EVENT_ID_PATTERN, parse_last_event_id
from orchestrator.vocabulary import RUN_CLOSING_EVENTS, RUN_TERMINAL_STATES, RunEvent
from tests.orchestrator.wire import admit, new_session, wait_terminal

OPERATIONS = (
    "createSession",
    "getSession",
    "deleteSession",
    "createTask",
    "getTask",
    "cancelTask",
    "streamTask",
    "listPools",
    "getPool",
    "getRouting",
    "setRouting",
    "healthz",
    "readyz",
    "metrics",
)


@pytest.fixture(scope="module")
def contract() -> OpenApiSchema:
    """The committed document with the committed configuration."""
    return load_contract()


def _response(case: Case[Any], status: int, content_type: str, body: bytes) -> Response:
    """A response to ``case`` as Schemathesis sees one from the wire."""
    url = f"http://127.0.0.1{case.formatted_path}"
    return Response(
        status_code=status,
        headers={"content-type": [content_type], "x-request-id": ["req_1"]},
        content=body,
        request=requests.Request(case.method, url).prepare(),
        elapsed=0.0,
        verify=True,
        encoding="utf-8",
    )


def _failures(case: Case[Any], response: Response, check: CheckFunction) -> list[str]:
    try:
        case.validate_response(response, checks=[check])
    except FailureGroup as group:
        return [f"{failure.title}: {failure.message}" for failure in group.exceptions]
    return []


def _positive_case(operation: Any) -> Case[Any]:
    """A generated valid case (positive mode), as the ``st run`` positive checks see it."""
    found: Case[Any] = hypothesis.find(
        operation.as_strategy(GenerationMode.POSITIVE),
        lambda _: True,
        settings=hypothesis.settings(database=None, derandomize=True),
    )
    return found


# ---------------------------------------------------------------- the stream


def _stream(http: httpx.Client, max_tokens: int = 3) -> tuple[str, bytes]:
    task_id = admit(http, new_session(http), max_tokens=max_tokens)["task_id"]
    wait_terminal(http, task_id)
    response = http.get(f"/v1/tasks/{task_id}/stream")
    assert response.status_code == 200, response.text
    return task_id, response.content


def _stream_case(contract: OpenApiSchema, task_id: str) -> Case[Any]:
    operation = contract.find_operation_by_id("streamTask")
    return operation.Case(path_parameters={"task_id": task_id})


_STREAM_PATHS = {
    "/v1/tasks/{task_id}/stream": TASK_STREAM,
    "/v1/runs/{run_id}/events": RUN_STREAM,
}


@pytest.mark.req("ORCH-0071", "ORCH-0076", "ORCH-0350", "ORCH-0351")
@pytest.mark.parametrize("path", sorted(_STREAM_PATHS))
def test_each_event_is_declared_with_its_data_schema(contract: OpenApiSchema, path: str) -> None:
    stream: EventStream = _STREAM_PATHS[path]
    document = contract.raw_schema
    content = document["paths"][path]["get"]["responses"]["200"]
    media = content["content"]["text/event-stream"]
    assert media["itemSchema"] == {"$ref": f"#/components/schemas/{stream.union}"}
    schemas = document["components"]["schemas"]
    union = schemas[stream.union]
    assert union["discriminator"]["propertyName"] == "event"
    assert set(union["discriminator"]["mapping"]) == set(stream.models)
    assert media["schema"]["contains"]["properties"]["event"]["enum"] == list(stream.closing)
    for event, model in stream.models.items():
        declared = schemas[event_schema_name(event)]
        assert declared["properties"]["event"] == {"const": event}
        assert set(declared["required"]) == {"id", "event", "data"}
        data = declared["properties"]["data"]
        assert data["contentMediaType"] == "application/json"
        assert data["contentSchema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert set(schemas[model.__name__]["required"]) == set(model.model_fields), event
        assert schemas[model.__name__]["additionalProperties"] is False, event


def test_the_run_stream_closes_with_the_run_closing_events() -> None:
    assert set(RUN_STREAM.closing) == RUN_CLOSING_EVENTS
    assert set(RUN_STREAM.models) == set(get_args(RunEvent))


@pytest.mark.req("ORCH-0071", "ORCH-0072", "ORCH-0076")
def test_schemathesis_accepts_every_event_of_a_real_stream(
    contract: OpenApiSchema, http: httpx.Client
) -> None:
    task_id, body = _stream(http)
    case = _stream_case(contract, task_id)
    response = _response(case, 200, "text/event-stream", body)
    assert _failures(case, response, response_schema_conformance) == []


BROKEN_STREAMS: dict[str, Callable[[bytes], bytes]] = {
    "token data with a field the spec does not list": lambda body: body.replace(
        b'"token_id":', b'"logprob":0.5,"token_id":', 1
    ),
    "error data without retriable": lambda body: body.replace(
        b"event: end\n", b"event: error\n"
    ).replace(b'"tokens_out":3,"finish_reason":"length"', b'"kind":"X","message":"m"'),
    "an event id that is not a sequence number": lambda body: body.replace(b"id: 2\n", b"id: b\n"),
    "an event the spec does not define": lambda body: body.replace(b"event: token", b"event: t", 1),
    "data that is not JSON": lambda body: body.replace(b'data: {"index":0', b"data: {index:0", 1),
    "two closing events": lambda body: body + body[body.rindex(b"id: ") :],
}


@pytest.mark.req("ORCH-0071", "ORCH-0072", "ORCH-0076", "ORCH-0081")
@pytest.mark.parametrize("name", sorted(BROKEN_STREAMS))
def test_schemathesis_refuses_a_broken_stream(
    name: str, contract: OpenApiSchema, http: httpx.Client
) -> None:
    task_id, body = _stream(http)
    _assert_refused(name, _stream_case(contract, task_id), body, BROKEN_STREAMS[name])


def _assert_refused(
    name: str, case: Case[Any], body: bytes, mutation: Callable[[bytes], bytes]
) -> None:
    """Schemathesis refuses ``body`` changed by ``mutation`` as an answer to ``case``."""
    broken = mutation(body)
    assert broken != body, f"{name}: the mutation did not apply to {body!r}"
    failures = _failures(
        case, _response(case, 200, "text/event-stream", broken), response_schema_conformance
    )
    assert failures, f"{name}: the document lets this stream through:\n{broken.decode()}"
    assert all(f.startswith("SSE ") for f in failures), failures


_RUN_NAMES = itertools.count(1)


def _run_stream(http: httpx.Client) -> tuple[str, bytes]:
    """The replay of an ended two-step run (``a`` then ``b``)."""
    steps = [
        {"id": "a", "prompt": "p", "max_tokens": 2},
        {"id": "b", "prompt": "{{ steps.a.output }}", "max_tokens": 2, "depends_on": ["a"]},
    ]
    name = f"contract-{next(_RUN_NAMES)}"
    document = {"name": name, "version": "1", "steps": steps}
    assert http.post("/v1/definitions", json=document).status_code == 201
    body = {"session_id": new_session(http), "definition": name, "version": "1"}
    run_id = http.post("/v1/runs", json=body).json()["run_id"]
    deadline = time.monotonic() + 10
    while http.get(f"/v1/runs/{run_id}").json()["state"] not in RUN_TERMINAL_STATES:
        assert time.monotonic() < deadline, f"run {run_id} did not end"
        time.sleep(0.01)
    response = http.get(f"/v1/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return run_id, response.content


def _run_stream_case(contract: OpenApiSchema, run_id: str) -> Case[Any]:
    operation = contract.find_operation_by_id("streamRun")
    return operation.Case(path_parameters={"run_id": run_id})


@pytest.mark.req("ORCH-0350", "ORCH-0351", "ORCH-0352")
def test_schemathesis_accepts_every_event_of_a_real_run_stream(
    contract: OpenApiSchema, http: httpx.Client
) -> None:
    run_id, body = _run_stream(http)
    assert body.count(b"event: step.succeeded") == 2, body
    case = _run_stream_case(contract, run_id)
    response = _response(case, 200, "text/event-stream", body)
    assert _failures(case, response, response_schema_conformance) == []


BROKEN_RUN_STREAMS: dict[str, Callable[[bytes], bytes]] = {
    "step.succeeded data with a field the table does not list": lambda body: body.replace(
        b'"output":', b'"tokens_out":2,"output":', 1
    ),
    "run.started data without its seed": lambda body: re.sub(
        rb',\s*"seed":\s*[0-9]+', b"", body, count=1
    ),
    "step.started with an attempt that is not a number": lambda body: re.sub(
        rb'"attempt":\s*1', b'"attempt":"1"', body, count=1
    ),
    "a step event the spec does not define": lambda body: body.replace(
        b"event: step.started", b"event: step.begun", 1
    ),
    "two closing events": lambda body: body + body[body.rindex(b"id: ") :],
}


@pytest.mark.req("ORCH-0350", "ORCH-0351", "ORCH-0352")
@pytest.mark.parametrize("name", sorted(BROKEN_RUN_STREAMS))
def test_schemathesis_refuses_a_broken_run_stream(
    name: str, contract: OpenApiSchema, http: httpx.Client
) -> None:
    run_id, body = _run_stream(http)
    _assert_refused(name, _run_stream_case(contract, run_id), body, BROKEN_RUN_STREAMS[name])


# ---------------------------------------------------------------- Last-Event-ID


@pytest.mark.req("ORCH-0200")
def test_the_document_declares_the_last_event_id_pattern(contract: OpenApiSchema) -> None:
    operation = contract.raw_schema["paths"]["/v1/tasks/{task_id}/stream"]["get"]
    (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "Last-Event-ID"
    assert header["schema"]["type"] == "string"
    assert header["schema"]["pattern"] == LAST_EVENT_ID_PATTERN


# What a header value can be once HTTP has parsed it: latin-1 text without
# surrounding whitespace (the HTTP parser strips it).
_HEADER_VALUES = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\x00")).map(
    str.strip
)


@pytest.mark.req("ORCH-0200")
@hypothesis.settings(max_examples=300, database=None, deadline=None)
@hypothesis.given(
    value=st.one_of(_HEADER_VALUES, st.from_regex(LAST_EVENT_ID_PATTERN).map(str.strip))
)
@hypothesis.example(value="²")  # a digit to str.isdigit(), not to int() or the pattern
@hypothesis.example(value="١٢")  # Arabic-Indic digits: int() reads them, the pattern does not
@hypothesis.example(value="9" * 18)
@hypothesis.example(value="9" * 19)
@hypothesis.example(value="")
def test_the_server_accepts_exactly_the_declared_pattern(value: str) -> None:
    declared = re.fullmatch(LAST_EVENT_ID_PATTERN, value) is not None
    assert (parse_last_event_id(value) is not None) == declared, repr(value)


@pytest.mark.req("ORCH-0200")
def test_empty_last_event_id_streams_from_the_start_and_unicode_digits_are_400(
    http: httpx.Client,
) -> None:
    task_id, whole = _stream(http)
    empty = http.get(f"/v1/tasks/{task_id}/stream", headers={"Last-Event-ID": ""})
    assert empty.status_code == 200
    assert empty.content == whole
    superscript = http.get(
        f"/v1/tasks/{task_id}/stream", headers={"Last-Event-ID": "²".encode("latin-1")}
    )
    assert superscript.status_code == 400, superscript.text
    assert superscript.json()["error"]["kind"] == "INVALID_PARAMS"


# ---------------------------------------------------------------- params


def _is_json_integer(value: object) -> bool:
    """An integer as JSON Schema counts them: ``7`` or ``7.0`` (ORCH-0003), never a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer()


@pytest.mark.req("ORCH-0041")
def test_valid_params_never_hold_strict_without_a_seed(contract: OpenApiSchema) -> None:
    """Schemathesis's valid bodies for ``POST /v1/tasks`` keep the rule the server enforces."""
    operation = contract.find_operation_by_id("createTask")
    seen: list[dict[str, Any]] = []

    @hypothesis.settings(max_examples=150, database=None, derandomize=True, deadline=None)
    @hypothesis.given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def generate(case: Case[Any]) -> None:
        params = case.body.get("params") if isinstance(case.body, dict) else None
        if isinstance(params, dict) and params.get("determinism") == "strict":
            seen.append(params)

    generate()
    assert seen, "no valid strict task was generated: the check saw nothing"
    without_seed = [p for p in seen if not _is_json_integer(p.get("seed"))]
    assert not without_seed, f"ORCH-0041: generated as valid: {without_seed[:3]}"


# ---------------------------------------------------------------- 410 for valid input

_EXPIRED = (
    b'{"error":{"kind":"SESSION_EXPIRED","message":"session has expired",'
    b'"retriable":false,"request_id":"req_1"}}'
)


@pytest.mark.req("ORCH-0031", "ORCH-0047")
@pytest.mark.parametrize(
    ("operation_id", "expected"),
    [
        ("getSession", True),
        ("createTask", True),
        ("getTask", False),
    ],
)
def test_410_is_expected_for_valid_input_where_the_spec_says_so(
    contract: OpenApiSchema, operation_id: str, expected: bool
) -> None:
    case = _positive_case(contract.find_operation_by_id(operation_id))
    failures = _failures(
        case, _response(case, 410, "application/json", _EXPIRED), positive_data_acceptance
    )
    assert (failures == []) is expected, failures
    defaults = schemathesis.openapi.from_path(contract_path(), config=schemathesis.Config())
    plain = _positive_case(defaults.find_operation_by_id(operation_id))
    without_config = _failures(
        plain, _response(plain, 410, "application/json", _EXPIRED), positive_data_acceptance
    )
    assert without_config, "Schemathesis expects 410 even without the project's configuration"


# ---------------------------------------------------------------- cancel is no delete


@pytest.mark.req("ORCH-0033", "ORCH-0035", "ORCH-0066")
def test_only_the_reads_of_a_cancelled_task_skip_the_use_after_free_check(
    contract: OpenApiSchema,
) -> None:
    enabled = {
        operation_id: contract.config.checks_config_for(
            operation=contract.find_operation_by_id(operation_id)
        ).use_after_free.enabled
        for operation_id in OPERATIONS
    }
    assert {op for op, on in enabled.items() if not on} == {"getTask", "streamTask"}


def test_every_exception_in_the_configuration_gives_its_reason() -> None:
    """Each non-default setting of an operation follows a comment naming the ORCH IDs behind it."""
    reason: list[str] = []
    unexplained = []
    text = resources.path(resources.SCHEMATHESIS_CONFIG).read_text(encoding="utf-8")
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            reason.append(stripped)
        elif stripped.startswith("[[operations]]"):
            reason = []
        elif stripped.startswith("checks."):
            if not re.search(r"ORCH-\d{4}", " ".join(reason)):
                unexplained.append(stripped)
            reason = []
    assert not unexplained, f"settings without a reason naming a requirement: {unexplained}"

"""Assertions on OrchQueue v1 answers, shared by the API tests.

The expected status and ``retriable`` flag of every error kind come from
:mod:`orchestrator.vocabulary`, whose table tests/orchestrator/unit/test_vocabulary.py
holds against the spec's table 2.2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import EventSource

from harness.fuzz.wire import backpressure_problems
from orchestrator.vocabulary import (
    BACKOFF_STATUSES,
    ERROR_KINDS,
    RESPONSE_ERROR_KINDS,
    TASK_ERROR_KINDS,
)

ENVELOPE_FIELDS = {"kind", "message", "retriable", "request_id"}
# Extra detail fields the server may add next to the four envelope fields.
DETAIL_FIELDS = {"problems", "state", "pools"}


def assert_backoff_headers(response: httpx.Response) -> tuple[int, int]:
    """Every 429/503 carries consistent ``Retry-After`` (s) and ``X-Backoff-Ms`` (ms).

    The consistency rule (ORCH-0021/0023) is the harness's own check; a zero
    backoff is refused on top of it.
    """
    headers = {name: response.headers.get_list(name) for name in response.headers}
    problems = backpressure_problems(response.status_code, headers)
    assert not problems, problems
    seconds, millis = int(response.headers["Retry-After"]), int(response.headers["X-Backoff-Ms"])
    assert millis >= 1
    return seconds, millis


def assert_request_id(response: httpx.Response) -> str:
    request_id: str | None = response.headers.get("X-Request-Id")
    assert request_id, f"HTTP {response.status_code} without X-Request-Id"
    assert "," not in request_id, f"X-Request-Id sent more than once: {request_id!r}"
    return request_id


def assert_error(
    response: httpx.Response, status: int, kind: str, *, message: str | None = None
) -> dict[str, Any]:
    """The answer is ``status`` with the OrchQueue envelope of ``kind``; returns the error."""
    assert kind in RESPONSE_ERROR_KINDS, f"{kind} never answers a request"
    assert ERROR_KINDS[kind].status == status, f"the spec maps {kind} to {ERROR_KINDS[kind]}"
    assert response.status_code == status, (
        f"expected HTTP {status} {kind}, got {response.status_code}: {response.text[:500]}"
    )
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == "application/json", media
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) >= ENVELOPE_FIELDS, error
    assert set(error) - ENVELOPE_FIELDS <= DETAIL_FIELDS, error
    assert error["kind"] == kind, error
    assert isinstance(error["message"], str)
    assert error["message"], error
    assert error["retriable"] is ERROR_KINDS[kind].retriable, error
    assert error["request_id"] == assert_request_id(response), error
    if message is not None:
        assert message in error["message"], error
    if status in BACKOFF_STATUSES:
        assert_backoff_headers(response)
    else:  # ORCH-0024
        assert "Retry-After" not in response.headers, status
        assert "X-Backoff-Ms" not in response.headers, status
    return error


def assert_4xx_envelope(response: httpx.Response) -> dict[str, Any]:
    """Hostile input: a client error in the envelope, never a server error."""
    assert 400 <= response.status_code < 500, (
        f"expected a 4xx, got {response.status_code}: {response.text[:500]}"
    )
    kind = response.json()["error"]["kind"]
    return assert_error(response, response.status_code, kind)


def assert_task_error(error: dict[str, Any] | None, kind: str) -> None:
    """A task's terminal ``error`` (stream event or ``task.error``)."""
    assert error is not None
    assert set(error) == {"kind", "message", "retriable"}, error
    assert error["kind"] == kind
    assert isinstance(error["message"], str)
    assert error["message"]
    assert kind in TASK_ERROR_KINDS, f"{kind} never ends a task"
    assert error["retriable"] is ERROR_KINDS[kind].retriable


# ---------------------------------------------------------------- SSE


def iter_events(response: httpx.Response) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(id, event, data)`` of an open ``text/event-stream`` response, up to ``end``/``error``."""
    for sse in EventSource(response).iter_sse():
        if sse.event == "message" and not sse.data:
            continue  # the `retry:` block
        yield int(sse.id), sse.event, json.loads(sse.data)
        if sse.event in ("end", "error"):
            return


def read_stream(
    http: httpx.Client, task_id: str, headers: dict[str, str] | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """A whole task stream, checked for the ``1, 2, 3 ...`` ids and one closing event."""
    with http.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert_request_id(response)
        events = list(iter_events(response))
    assert events, "empty stream"
    assert events[-1][1] in ("end", "error"), events[-1]
    assert [e for e in events if e[1] in ("end", "error")] == [events[-1]]
    ids = [e[0] for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    return events

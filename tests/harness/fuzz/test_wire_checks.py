"""The envelope, error-kind and backpressure checks, each failing with its ORCH ID."""

from __future__ import annotations

import json

import pytest

from harness.fuzz.wire import backpressure_problems, envelope_problems, request_id_problems


def _envelope(kind: str = "NOT_FOUND", retriable: bool = False, **extra: object) -> bytes:
    error = {"kind": kind, "message": "no such task", "retriable": retriable, "request_id": "r1"}
    error.update(extra)
    return json.dumps({"error": error}).encode()


HEADERS = {"X-Request-Id": ["r1"]}


def test_a_conformant_error_has_no_problem() -> None:
    assert envelope_problems(404, HEADERS, _envelope(details={"x": 1})) == []
    assert envelope_problems(200, HEADERS, b"not even json") == []
    assert request_id_problems({"x-request-id": ["r1"]}) == []


@pytest.mark.parametrize(
    ("status", "body", "req"),
    [
        (404, b'{"detail":"Not Found"}', "ORCH-0014"),
        (404, b"Not Found", "ORCH-0014"),
        (404, _envelope(message=""), "ORCH-0014"),
        (404, _envelope(retriable="no"), "ORCH-0014"),  # type: ignore[arg-type]
        (404, _envelope(request_id="other"), "ORCH-0015"),
        (404, _envelope(request_id=None), "ORCH-0014"),
        (404, _envelope(kind="MISSING"), "ORCH-0019"),
        (400, _envelope(kind="NOT_FOUND"), "ORCH-0019"),
        (429, _envelope(kind="ADMISSION_REJECT", retriable=False), "ORCH-0019"),
    ],
)
def test_each_broken_error_names_its_requirement(status: int, body: bytes, req: str) -> None:
    problems = envelope_problems(status, HEADERS, body)
    assert any(p.startswith(f"{req}: ") for p in problems), (req, problems)


def test_every_response_needs_one_request_id() -> None:
    assert request_id_problems({})[0].startswith("ORCH-0004: ")
    assert request_id_problems({"X-Request-Id": ["a", "b"]})[0].startswith("ORCH-0004: ")


@pytest.mark.parametrize(
    ("retry_after", "backoff", "req"),
    [
        (None, "1200", "ORCH-0021"),
        ("2", None, "ORCH-0021"),
        ("1.5", "1200", "ORCH-0021"),
        ("2", "soon", "ORCH-0021"),
        ("1", "1200", "ORCH-0023"),
        ("0", "0", "ORCH-0023"),
    ],
)
def test_backpressure_headers(retry_after: str | None, backoff: str | None, req: str) -> None:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = [retry_after]
    if backoff is not None:
        headers["x-backoff-ms"] = [backoff]
    for status in (429, 503):
        problems = backpressure_problems(status, headers)
        assert any(p.startswith(f"{req}: ") for p in problems), (req, problems)


def test_consistent_backpressure_headers_pass_and_stray_ones_are_flagged() -> None:
    assert backpressure_problems(429, {"Retry-After": ["2"], "X-Backoff-Ms": ["1200"]}) == []
    assert backpressure_problems(503, {"Retry-After": ["1"], "X-Backoff-Ms": ["40"]}) == []
    stray = backpressure_problems(404, {"Retry-After": ["1"]})
    assert stray and stray[0].startswith("ORCH-0024: ")

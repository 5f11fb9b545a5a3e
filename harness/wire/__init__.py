"""Shared code of the HTTP conformance checks (``harness/conformance/test_contract_*``).

Raw HTTP on purpose: the typed client validates and reconnects, which would hide
exactly the wire details these checks certify (headers, envelopes, ``id:`` lines,
``Last-Event-ID`` resumes). Standard library + httpx only, except
:mod:`harness.wire.shapes`, the syrupy snapshots of every kind of answer.
"""

from harness.checks import expect
from harness.wire.http import (
    Wire,
    error_kind,
    error_problems,
    expect_error,
    parse_rfc3339,
)
from harness.wire.stream import SseCapture, SseEvent, read_stream
from orchestrator.vocabulary import TERMINAL_STATES

__all__ = [
    "TERMINAL_STATES",
    "SseCapture",
    "SseEvent",
    "Wire",
    "error_kind",
    "error_problems",
    "expect",
    "expect_error",
    "parse_rfc3339",
    "read_stream",
]

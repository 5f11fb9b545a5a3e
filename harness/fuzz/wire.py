"""Checks of every response's wire shape: error envelope, error kinds, backpressure headers.

Pure functions over status, headers and body (the standard library,
``orchestrator.numerals`` and ``orchestrator.vocabulary`` only), so the fuzz
checks, the state machine and any other suite can share them. Each
problem string starts with the ORCH ID it breaks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.numerals import ascii_int
from orchestrator.vocabulary import BACKOFF_STATUSES, ERROR_KINDS

Headers = Mapping[str, Sequence[str]]
"""Header name -> values, any case (Schemathesis' ``Response.headers`` shape)."""


def header(headers: Headers, name: str) -> list[str]:
    """All values of ``name``, case-insensitively."""
    wanted = name.lower()
    return [value for key, values in headers.items() if key.lower() == wanted for value in values]


def _integer(text: str) -> int | None:
    return ascii_int(text, max_digits=30)


def backpressure_problems(status: int, headers: Headers) -> list[str]:
    """ORCH-0021/0023 on 429 and 503; ORCH-0024 on every other status."""
    retry_after = header(headers, "Retry-After")
    backoff = header(headers, "X-Backoff-Ms")
    if status not in BACKOFF_STATUSES:
        if retry_after or backoff:
            return [f"ORCH-0024: a {status} response carries Retry-After/X-Backoff-Ms"]
        return []
    problems = []
    seconds = _integer(retry_after[0]) if len(retry_after) == 1 else None
    millis = _integer(backoff[0]) if len(backoff) == 1 else None
    if seconds is None:
        problems.append(
            f"ORCH-0021: a {status} response must carry one Retry-After with an integer number "
            f"of seconds; got {retry_after}"
        )
    if millis is None:
        problems.append(
            f"ORCH-0021: a {status} response must carry one X-Backoff-Ms with an integer number "
            f"of milliseconds; got {backoff}"
        )
    if seconds is not None and millis is not None:
        expected = max(1, math.ceil(millis / 1000))
        if seconds != expected:
            problems.append(
                f"ORCH-0023: Retry-After {seconds} must equal X-Backoff-Ms {millis} / 1000 "
                f"rounded up and at least 1, i.e. {expected}"
            )
    return problems


def envelope_problems(status: int, headers: Headers, body: bytes) -> list[str]:
    """ORCH-0014/0015/0019 on every 4xx and 5xx; nothing to say about other statuses."""
    if status < 400:
        return []
    try:
        document: Any = json.loads(body)
    except ValueError:
        return [f"ORCH-0014: the {status} body is not JSON: {body[:120]!r}"]
    if not isinstance(document, dict) or set(document) != {"error"}:
        return [
            f"ORCH-0014: the {status} body must be an object with the single key `error`: "
            f"{body[:200]!r}"
        ]
    error = document["error"]
    if not isinstance(error, dict):
        return [f"ORCH-0014: `error` of the {status} body is not an object: {body[:200]!r}"]
    problems = []
    kind, message = error.get("kind"), error.get("message")
    retriable, request_id = error.get("retriable"), error.get("request_id")
    if not isinstance(kind, str):
        problems.append(f"ORCH-0014: `error.kind` must be a string, got {kind!r}")
    if not isinstance(message, str) or not message:
        problems.append(f"ORCH-0014: `error.message` must be a non-empty string, got {message!r}")
    if not isinstance(retriable, bool):
        problems.append(f"ORCH-0014: `error.retriable` must be a boolean, got {retriable!r}")
    if not isinstance(request_id, str):
        problems.append(f"ORCH-0014: `error.request_id` must be a string, got {request_id!r}")
    else:
        sent = header(headers, "X-Request-Id")
        if sent != [request_id]:
            problems.append(
                f"ORCH-0015: `error.request_id` {request_id!r} must equal X-Request-Id {sent}"
            )
    if isinstance(kind, str):
        expected = ERROR_KINDS.get(kind)
        if expected is None:
            problems.append(f"ORCH-0019: unknown error kind {kind!r} (status {status})")
        elif expected != (status, retriable):
            problems.append(
                f"ORCH-0019: kind {kind} must be status {expected[0]} with retriable "
                f"{expected[1]}; got {status} with retriable {retriable!r}"
            )
    return problems


def request_id_problems(headers: Headers) -> list[str]:
    """ORCH-0004: every response carries exactly one non-empty X-Request-Id."""
    values = header(headers, "X-Request-Id")
    if len(values) != 1 or not values[0]:
        return [f"ORCH-0004: every response must carry one X-Request-Id; got {values}"]
    return []

"""Wire conventions over raw HTTP: request IDs, errors, media types, limits, auth, backpressure.

The Pact and Schemathesis suites certify shapes; these checks certify the
behaviour behind them that a client can observe: which request gets which
error kind, the ``X-Request-Id`` echo, the body limit, the bearer token, and the
backpressure headers of a real 429. Everything goes over HTTP to ``orch_target``
(in-process or ``--orch-url``); checks that need a configured server (a token, a
one-slot queue) use ``orch_serve``, with replicas on the harness's engine: in-process,
or started by ``--orch-serve-cmd``; against a live ``--orch-url`` target they are
skipped, never passed. Sessions and tasks are :mod:`test_contract_lifecycle`, pools
:mod:`test_contract_pools`.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from harness.engine.control import (
    HOLD_TOKENS,
    ServeOnEngine,
    slow_wire,
)
from harness.plugin.target import ServeFactory
from harness.wire import Wire, expect, expect_error

pytestmark = pytest.mark.contract


# ---------------------------------------------------------------- 1 conventions


@pytest.mark.req("ORCH-0004", "ORCH-0015")
def test_request_id_is_echoed_or_generated(wire: Wire) -> None:
    unknown = "/v1/tasks/task_does_not_exist"
    for method, path in (("GET", "/healthz"), ("GET", "/v1/pools"), ("GET", unknown)):
        sent = f"conformance-{method}-{len(path)}-{time.monotonic_ns()}"
        echoed = wire.http.request(method, path, headers={"X-Request-Id": sent})
        got = echoed.headers.get_list("x-request-id")
        expect(
            got == [sent],
            f"ORCH-0004: {method} {path} with X-Request-Id {sent!r} must echo it; got {got}",
        )
        first = wire.http.request(method, path).headers.get_list("x-request-id")
        second = wire.http.request(method, path).headers.get_list("x-request-id")
        expect(
            len(first) == 1 and len(second) == 1 and first[0] and second[0],
            f"ORCH-0004: {method} {path} without X-Request-Id must still carry one; got "
            f"{first} and {second}",
        )
        expect(
            first != second,
            f"ORCH-0004: two requests without X-Request-Id got the same generated id {first}",
        )
    missing = wire.http.get(unknown, headers={"X-Request-Id": "conformance-envelope"})
    error = expect_error(missing, 404, "NOT_FOUND", "ORCH-0058", "GET of an unknown task")
    expect(
        error.get("request_id") == "conformance-envelope",
        f"ORCH-0015: error.request_id must equal the echoed X-Request-Id; got {error}",
    )


@pytest.mark.req("ORCH-0013", "ORCH-0011", "ORCH-0014", "ORCH-0019")
def test_unknown_paths_and_methods(wire: Wire) -> None:
    for path in ("/v1/nowhere", "/v2/sessions", "/"):
        expect_error(wire.http.get(path), 404, "NOT_FOUND", "ORCH-0013", f"GET {path}")
    for method, path in (("PUT", "/v1/sessions"), ("DELETE", "/v1/pools"), ("POST", "/healthz")):
        expect_error(
            wire.http.request(method, path),
            405,
            "METHOD_NOT_ALLOWED",
            "ORCH-0011",
            f"{method} {path}",
        )


@pytest.mark.req("ORCH-0010")
def test_body_not_declared_json_is_415(wire: Wire) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = wire.http.post(
            "/v1/sessions", content=b"{}", headers={"Content-Type": content_type}
        )
        expect_error(
            response,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "ORCH-0010",
            f"POST /v1/sessions with Content-Type {content_type}",
        )


@pytest.mark.req("ORCH-0009")
def test_body_over_the_default_limit_is_413(wire: Wire) -> None:
    body = json.dumps({"ttl_seconds": 60, "metadata": {"pad": "x" * (1024 * 1024)}}).encode()
    response = wire.post_json("/v1/sessions", body)
    expect_error(
        response,
        413,
        "PAYLOAD_TOO_LARGE",
        "ORCH-0009",
        f"a {len(body)}-byte body (limit 1 MiB by default)",
    )


@pytest.mark.req("ORCH-0002", "ORCH-0003", "ORCH-0038", "ORCH-0039", "ORCH-0040")
def test_invalid_requests_are_400_and_valid_edges_are_accepted(wire: Wire) -> None:
    """Malformed bodies, unknown fields, wrong types and values outside an enumeration; the
    numeric and length bounds are ``test_contract_bounds``'s, on both sides."""
    session_id = str(wire.new_session(ttl_seconds=600)["session_id"])
    task = {"session_id": session_id, "prompt": "hello", "max_tokens": 2}
    refused: list[tuple[str, str, Any]] = [
        ("ORCH-0002", "/v1/sessions", b'{"ttl_seconds": '),
        ("ORCH-0002", "/v1/sessions", {"ttl_seconds": 60, "colour": "red"}),
        ("ORCH-0002", "/v1/tasks", {**task, "colour": "red"}),
        ("ORCH-0002", "/v1/tasks", {**task, "params": {"seed": 1, "colour": "red"}}),
        ("ORCH-0002", "/v1/tasks", [task]),
        ("ORCH-0003", "/v1/sessions", {"ttl_seconds": True}),
        ("ORCH-0003", "/v1/sessions", {"ttl_seconds": "60"}),
        ("ORCH-0003", "/v1/tasks", {**task, "max_tokens": True}),
        ("ORCH-0003", "/v1/tasks", {**task, "max_tokens": "2"}),
        ("ORCH-0003", "/v1/tasks", {**task, "max_tokens": 2.5}),
        ("ORCH-0038", "/v1/tasks", {"prompt": "hello"}),
        ("ORCH-0038", "/v1/tasks", {"session_id": session_id}),
        ("ORCH-0039", "/v1/tasks", {**task, "priority": "urgent"}),
        ("ORCH-0040", "/v1/tasks", {**task, "params": {"determinism": "exact"}}),
    ]
    failures = []
    for req, path, body in refused:
        response = wire.post_json(path, body)
        try:
            expect_error(response, 400, "INVALID_PARAMS", req, f"POST {path} {str(body)[:80]}")
        except AssertionError as exc:
            failures.append(str(exc))
    accepted: list[tuple[str, str, Any, int]] = [
        ("ORCH-0003", "/v1/sessions", {"ttl_seconds": 60.0}, 201),
        ("ORCH-0003", "/v1/tasks", {**task, "max_tokens": 2.0}, 202),
        ("ORCH-0039", "/v1/tasks", {**task, "priority": "batch", "max_tokens": 1}, 202),
    ]
    for req, path, body, status in accepted:
        response = wire.post_json(path, body)
        if response.status_code == 201:
            wire.sessions.append(response.json()["session_id"])
        if response.status_code != status:
            failures.append(
                f"{req}: POST {path} {str(body)[:80]} must be accepted with {status}; got "
                f"{response.status_code}: {response.text[:200]}"
            )
    expect(not failures, "\n".join(failures))


@pytest.mark.req("ORCH-0007", "ORCH-0008")
def test_bearer_token_guards_v1_only(orch_serve: ServeFactory) -> None:
    target = orch_serve(auth_token="conformance-secret")
    with Wire(target.url) as anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic conformance-secret"},
            {"Authorization": "conformance-secret"},
        ):
            for path in ("/v1/pools", "/v1/sessions/any", "/v1/admin/routing"):
                expect_error(
                    anonymous.http.get(path, headers=headers),
                    401,
                    "UNAUTHORIZED",
                    "ORCH-0007",
                    f"GET {path} with {headers or 'no Authorization'} while a token is set",
                )
        for path in ("/healthz", "/readyz", "/metrics"):
            status = anonymous.http.get(path).status_code
            expect(status == 200, f"ORCH-0008: {path} must stay open with a token; got {status}")
        authorised = anonymous.http.get("/v1/pools", headers=target.auth_headers())
        expect(
            authorised.status_code == 200,
            f"ORCH-0007: the right bearer token must be accepted; got {authorised.status_code}",
        )


# ---------------------------------------------------------------- 2.3 backpressure


@pytest.mark.req("ORCH-0021", "ORCH-0022", "ORCH-0023", "ORCH-0024", "ORCH-0095", "ORCH-0050")
def test_full_queue_429_carries_jittered_backoff(serve_on_engine: ServeOnEngine) -> None:
    with slow_wire(serve_on_engine, queue_capacity=1, overflow_policy="reject") as wire:
        session_id = str(wire.new_session()["session_id"])
        running = str(wire.admit(session_id, max_tokens=HOLD_TOKENS)["task_id"])
        wire.wait_running(running)
        accepted = wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "q"})
        expect(
            accepted.status_code == 202
            and "retry-after" not in accepted.headers
            and "x-backoff-ms" not in accepted.headers,
            f"ORCH-0024: a 202 carries no Retry-After/X-Backoff-Ms; got {accepted.headers}",
        )
        backoffs = []
        for _ in range(12):
            response = wire.post_json("/v1/tasks", {"session_id": session_id, "prompt": "r"})
            expect_error(response, 429, "ADMISSION_REJECT", "ORCH-0095", "a full reject queue")
            backoff = int(response.headers["x-backoff-ms"])
            expect(
                int(response.headers["retry-after"]) == max(1, math.ceil(backoff / 1000)),
                f"ORCH-0023: Retry-After must be ceil(X-Backoff-Ms / 1000); got "
                f"{response.headers['retry-after']} for {backoff}",
            )
            backoffs.append(backoff)
        # The suggested wait itself may change between answers, so only the jitter's
        # existence is certain from outside: 12 equal values are a missing jitter.
        expect(
            len(set(backoffs)) > 1,
            f"ORCH-0022: X-Backoff-Ms is the suggested wait plus a random 0..250 ms jitter, so "
            f"12 answers cannot all be equal; got {backoffs}",
        )
        info = wire.http.get(f"/v1/sessions/{session_id}").json()
        expect(
            info["tasks"]["queued"] + info["tasks"]["running"] == 2,
            f"ORCH-0050: refused admissions create no task; session counts {info['tasks']}",
        )

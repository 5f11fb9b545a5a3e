"""Deliberately broken orchestrators for the self-tests of the HTTP conformance checks.

Each mutant is an ASGI layer (``orch_serve(wrap_app=...)``) around the real
orchestratord that breaks exactly one requirement on the wire and leaves the
rest intact, so the conformance check of that requirement must be the one to fail.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from tests.harness.mutantkit import (
    App,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    Wrap,
    matching,
    request_header,
    respond,
    rewrite_chunks,
    rewrite_headers,
    rewrite_response,
    without,
)


def request_id_not_echoed(app: App) -> App:
    """Every response gets a server-made ``X-Request-Id``, ignoring the client's (ORCH-0004)."""
    counter = itertools.count(1)

    def change(status: int, headers: Headers) -> Headers:
        return [
            *without(headers, b"x-request-id"),
            (b"x-request-id", f"req_mutant_{next(counter)}".encode()),
        ]

    return rewrite_headers(app, change)


def resume_repeats_last_event(app: App) -> App:
    """``Last-Event-ID: n`` resumes at n instead of n + 1: one duplicate event (ORCH-0083)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/stream"):
            headers = []
            for key, value in scope["headers"]:
                if key.lower() == b"last-event-id" and value.isdigit() and int(value) > 0:
                    value = str(int(value) - 1).encode()
                headers.append((key, value))
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return mutant


def last_event_id_read_with_isdigit_and_int(app: App) -> App:
    """``Last-Event-ID`` checked with ``str.isdigit()`` and read with ``int()`` (ORCH-0200).

    A value ``isdigit()`` takes but ``int()`` refuses (``²``) gets a 500; one that
    ``int()`` reads (``٣``, ``+1``, ``1_0``) resumes as that number.
    """

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/stream"):
            headers = []
            for key, value in scope["headers"]:
                if key.lower() == b"last-event-id":
                    try:
                        text = value.decode("utf-8").strip()
                    except UnicodeDecodeError:
                        text = value.decode("latin-1").strip()
                    try:
                        value = str(int(text)).encode()
                    except ValueError:
                        if text.isdigit():
                            body = b'{"error": {"kind": "INTERNAL", "message": "int()", '
                            await respond(
                                send,
                                500,
                                [(b"content-type", b"application/json")],
                                body + b'"retriable": true, "request_id": null}}',
                            )
                            return
                headers.append((key, value))
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return mutant


def cancel_of_ended_task_is_200(app: App) -> App:
    """``DELETE`` of an ended task answers 200 with the task instead of 409 (ORCH-0069)."""

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        return (200, b'{"state": "completed"}') if status == 409 else (status, body)

    return rewrite_response(app, change, matching("DELETE", "/v1/tasks/.*"))


def session_without_expires_at(app: App) -> App:
    """The 201 of ``POST /v1/sessions`` lacks ``expires_at`` (ORCH-0026)."""

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        if status != 201:
            return status, body
        document = json.loads(body)
        document.pop("expires_at", None)
        return status, json.dumps(document).encode()

    return rewrite_response(app, change, matching("POST", "/v1/sessions"))


MUTANTS: dict[str, tuple[Wrap, str, str, str]] = {
    "X-Request-Id not echoed": (
        request_id_not_echoed, "test_contract_http", "test_request_id_is_echoed_or_generated",
        "ORCH-0004",
    ),
    "resume repeats the last event": (
        resume_repeats_last_event, "test_contract_stream",
        "test_last_event_id_resumes_without_gap_or_duplicate", "ORCH-0083",
    ),
    "Last-Event-ID: superscript digit is a 500": (
        last_event_id_read_with_isdigit_and_int, "test_contract_stream",
        "not_ascii_digits and superscript-two", "ORCH-0200",
    ),
    "Last-Event-ID: Arabic-Indic digit resumes": (
        last_event_id_read_with_isdigit_and_int, "test_contract_stream",
        "not_ascii_digits and arabic-indic-three", "ORCH-0200",
    ),
    "DELETE of an ended task answers 200": (
        cancel_of_ended_task_is_200, "test_contract_lifecycle",
        "test_cancelling_a_completed_task_is_409", "ORCH-0069",
    ),
    "201 without expires_at": (
        session_without_expires_at, "test_contract_lifecycle",
        "test_session_fields_and_ttl_arithmetic", "ORCH-0026",
    ),
}  # fmt: skip
"""name -> (wrap_app, conformance module, ``-k`` test, ORCH ID it breaks)."""


def backoff_without_jitter(app: App) -> App:
    """Every 429 says ``X-Backoff-Ms: 1000`` (``Retry-After: 1``) exactly: no jitter (ORCH-0022)."""

    def change(status: int, headers: Headers) -> Headers:
        if status != 429:
            return headers
        return [
            *without(headers, b"x-backoff-ms", b"retry-after"),
            (b"x-backoff-ms", b"1000"),
            (b"retry-after", b"1"),
        ]

    return rewrite_headers(app, change)


def stream_without_pings(app: App) -> App:
    """Idle streams stay silent: every ``: ping`` comment is removed (ORCH-0086)."""

    def change(chunk: bytes) -> bytes:
        return b"".join(
            line for line in chunk.splitlines(keepends=True) if not line.startswith(b":")
        )

    return rewrite_chunks(app, change, matching(path=".*/stream"))


def queue_depth_always_zero(app: App) -> App:
    """Pools report an empty queue whatever waits in it (ORCH-0123)."""

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        if status != 200:
            return status, body
        document = json.loads(body)
        for pool in document.get("pools", [document]):
            pool["queue_depth"] = {"interactive": 0, "batch": 0}
        return status, json.dumps(document).encode()

    return rewrite_response(app, change, matching("GET", "/v1/pools.*"))


IN_PROCESS_MUTANTS: dict[str, tuple[Wrap, str, str, str]] = {
    "429 without jitter": (
        backoff_without_jitter, "test_contract_http",
        "test_full_queue_429_carries_jittered_backoff", "ORCH-0022",
    ),
    "no pings on an idle stream": (
        stream_without_pings, "test_contract_stream",
        "test_idle_stream_pings_without_ids_then_closes_on_cancel", "ORCH-0086",
    ),
    "queue_depth always zero": (
        queue_depth_always_zero, "test_contract_lifecycle",
        "test_queued_and_running_tasks_then_cancel", "ORCH-0123",
    ),
}  # fmt: skip
"""Mutants of checks that configure their own server (``orch_serve``), which skip against
``--orch-url``: they run in-process with every server of the run wrapped."""


def auth_skipped_on_stream(token: str) -> Wrap:
    """The stream route is mounted outside the bearer check: it serves anyone (ORCH-0007)."""
    credentials = f"Bearer {token}".encode()

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].endswith("/stream"):
                headers = without(list(scope["headers"]), b"authorization")
                scope = {**scope, "headers": [*headers, (b"authorization", credentials)]}
            await app(scope, receive, send)

        return mutant

    return wrap


def readyz_checks_a_presented_token(token: str) -> Wrap:
    """``/readyz`` refuses a request whose Authorization header is wrong (ORCH-0008)."""
    credentials = f"Bearer {token}".encode()
    error = {
        "kind": "UNAUTHORIZED",
        "message": "wrong bearer token",
        "retriable": False,
        "request_id": "req_mutant",
    }
    body = json.dumps({"error": error}).encode()

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            presented = request_header(scope, b"authorization") if scope["type"] == "http" else b""
            if (
                scope["type"] == "http"
                and scope["path"] == "/readyz"
                and presented not in (b"", credentials)
            ):
                headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_mutant")]
                await respond(send, 401, headers, body)
                return
            await app(scope, receive, send)

        return mutant

    return wrap


AUTH_MUTANTS: dict[str, tuple[Callable[[str], Wrap], str, str]] = {
    "bearer check skipped on the stream route": (
        auth_skipped_on_stream, "test_every_v1_operation_refuses", "ORCH-0007",
    ),
    "readyz refuses a wrong token": (
        readyz_checks_a_presented_token, "test_open_routes_stay_open", "ORCH-0008",
    ),
}  # fmt: skip
"""name -> (``wrap_app`` factory taking the configured token, ``-k`` test, ORCH ID)."""


def _refuse_long_prompts(limit: int) -> Wrap:
    """``POST /v1/tasks`` refuses prompts over ``limit`` characters: a bound below the spec's."""

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/v1/tasks"):
                await app(scope, receive, send)
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            try:
                prompt = json.loads(body).get("prompt")
            except (ValueError, AttributeError):
                prompt = None
            if isinstance(prompt, str) and len(prompt) > limit:
                error = {
                    "kind": "INVALID_PARAMS",
                    "retriable": False,
                    "request_id": "req_mutant",
                    "message": f"prompt: at most {limit} characters",
                }
                headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_mutant")]
                await respond(send, 400, headers, json.dumps({"error": error}).encode())
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)

        return mutant

    return wrap


def backoff_in_seconds(app: App) -> App:
    """The suggested wait is written in seconds (1, meant as "one second") where milliseconds
    are due; the jitter is still added in milliseconds, so ``X-Backoff-Ms`` is 1..251 and
    ``Retry-After`` 1, consistent with each other (ORCH-0022/0023 hold; ORCH-0244 does not)."""

    def change(status: int, headers: Headers) -> Headers:
        if status not in (429, 503):
            return headers
        jitter = int(dict(headers).get(b"x-backoff-ms", b"1000")) % 1000
        return [
            *without(headers, b"x-backoff-ms", b"retry-after"),
            (b"x-backoff-ms", str(1 + jitter).encode()),
            (b"retry-after", b"1"),
        ]

    return rewrite_headers(app, change)


def retry_advice_in_seconds(app: App) -> App:
    """The stream's ``retry:`` line advises seconds: ``retry: 3`` (ORCH-0249)."""

    def change(chunk: bytes) -> bytes:
        return chunk.replace(b"retry: 3000\n", b"retry: 3\n")

    return rewrite_chunks(app, change, matching(path=".*/stream"))


def request_id_cut_at_64(app: App) -> App:
    """An ``X-Request-Id`` over 64 characters is replaced (ORCH-0243: 128 must be echoed)."""

    async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(request_header(scope, b"x-request-id")) > 64:
            headers = without(list(scope["headers"]), b"x-request-id")
            scope = {**scope, "headers": [*headers, (b"x-request-id", b"req_mutant_own")]}
        await app(scope, receive, send)

    return mutant


BOUND_MUTANTS: dict[str, tuple[Wrap, str, str]] = {
    "prompts limited to 16,384 characters": (
        _refuse_long_prompts(16_384), "test_request_bounds_accept", "ORCH-0038",
    ),
    "retry: advice in seconds": (
        retry_advice_in_seconds, "test_retry_advice_is_the_default", "ORCH-0249",
    ),
    "X-Request-Id echoed up to 64 characters only": (
        request_id_cut_at_64, "test_request_id_of_128", "ORCH-0243",
    ),
}  # fmt: skip
"""name -> (wrap_app, ``-k`` test of ``test_contract_bounds``, ORCH ID): checks over --orch-url."""

CONFIGURED_BOUND_MUTANTS: dict[str, tuple[Wrap, str, str]] = {
    "X-Backoff-Ms in seconds": (
        backoff_in_seconds, "test_full_queue_refusals_suggest_one_second", "ORCH-0244",
    ),
}  # fmt: skip
"""name -> (wrap_app, ``-k`` test, ORCH ID): checks that configure their own server."""

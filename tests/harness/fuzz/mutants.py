"""Deliberately broken orchestrators for the fuzz self-tests.

Each mutant is an ASGI layer (``orch_serve(wrap_app=...)``) around the real
orchestratord that breaks exactly one requirement on the wire and leaves the
rest conformant, so only the check of that requirement can notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

ASGIApp = Callable[..., Any]
Wrap = Callable[[ASGIApp], ASGIApp]

PRIORITIES = ("interactive", "batch")


def _header(scope: dict[str, Any], name: bytes) -> bytes:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return b""


def server_error_on_bad_priority(app: ASGIApp) -> ASGIApp:
    """``POST /v1/tasks`` with an invalid ``priority`` crashes: 500 ``INTERNAL`` (ORCH-0017).

    The 500 itself is well formed (envelope, X-Request-Id), so only the
    "no 5xx because of the request" check can see it.
    """

    async def mutant(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/v1/tasks"):
            await app(scope, receive, send)
            return
        messages = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        bad = (
            isinstance(document, dict) and document.get("priority", PRIORITIES[0]) not in PRIORITIES
        )
        if bad:
            request_id = _header(scope, b"x-request-id") or b"req_mutant"
            error = {"kind": "INTERNAL", "message": "priority lookup crashed",
                     "retriable": True, "request_id": request_id.decode("latin-1")}  # fmt: skip
            payload = json.dumps({"error": error}).encode()
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id)]})  # fmt: skip
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    return mutant


def _rewrite_start(app: ASGIApp, change: Callable[[dict[str, Any]], None]) -> ASGIApp:
    async def mutant(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                change(message)
            await send(message)

        await app(scope, receive, rewrite if scope["type"] == "http" else send)

    return mutant


def retry_after_dropped(app: ASGIApp) -> ASGIApp:
    """429 and 503 answers lose their ``Retry-After`` header (ORCH-0021)."""

    def change(start: dict[str, Any]) -> None:
        if start["status"] in (429, 503):
            start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"retry-after"]

    return _rewrite_start(app, change)


def retry_after_inconsistent(app: ASGIApp) -> ASGIApp:
    """429 and 503 answers say ``Retry-After: 7`` whatever ``X-Backoff-Ms`` says (ORCH-0023)."""

    def change(start: dict[str, Any]) -> None:
        if start["status"] in (429, 503):
            start["headers"] = [
                (k, b"7" if k.lower() == b"retry-after" else v) for k, v in start["headers"]
            ]

    return _rewrite_start(app, change)


def envelope_dropped(app: ASGIApp) -> ASGIApp:
    """404 answers become FastAPI's bare ``{"detail": "Not Found"}`` (ORCH-0014)."""

    async def mutant(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status: list[int] = []

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                if message["status"] == 404:
                    payload = b'{"detail":"Not Found"}'
                    headers = [(k, v) for k, v in message["headers"]
                               if k.lower() != b"content-length"]  # fmt: skip
                    headers.append((b"content-length", str(len(payload)).encode()))
                    await send({**message, "headers": headers})
                    await send({"type": "http.response.body", "body": payload})
                    return
            elif status and status[0] == 404:
                return
            await send(message)

        await app(scope, receive, rewrite if scope["type"] == "http" else send)

    return mutant


def sse_duplicate_id(app: ASGIApp) -> ASGIApp:
    """The second event of every stream repeats id 1 (ORCH-0072)."""

    async def mutant(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/stream"):
            await app(scope, receive, send)
            return

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                message = {**message, "body": body.replace(b"id: 2\n", b"id: 1\n")}
            await send(message)

        await app(scope, receive, rewrite)

    return mutant


WARMING_POOL = [{"pool_id": "default", "replicas": [{"replica_id": "r1", "warmup_ms": 3_600_000}]}]
"""A pool that stays warming: ``/readyz`` and admissions answer 503 ``POOL_UNREADY``."""

MUTANTS: dict[str, tuple[Wrap, dict[str, Any], str, str]] = {
    "500 on an invalid priority": (
        server_error_on_bad_priority, {}, "test_operation_meets_contract and createTask",
        "ORCH-0017",
    ),
    "503 without Retry-After": (
        retry_after_dropped, {"pools": WARMING_POOL}, "test_operation_meets_contract and readyz",
        "ORCH-0021",
    ),
    "Retry-After not derived from X-Backoff-Ms": (
        retry_after_inconsistent, {"pools": WARMING_POOL},
        "test_operation_meets_contract and readyz", "ORCH-0023",
    ),
    "404 without the error envelope": (
        envelope_dropped, {}, "test_operation_meets_contract and getTask", "ORCH-0014",
    ),
    "stream with a duplicate event id": (
        sse_duplicate_id, {}, "test_linked_workflow_meets_contract", "ORCH-0072",
    ),
}  # fmt: skip
"""name -> (wrap_app, orch_serve config, ``-k`` selection of the fuzz suite, ORCH ID it breaks)."""

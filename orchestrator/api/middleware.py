"""Cross-cutting HTTP concerns as one pure ASGI middleware.

Request ids, bearer auth, the body-size limit and the connection limits apply
to every route, so they sit in front of routing; a pure ASGI layer costs a few
microseconds per request where Starlette's ``BaseHTTPMiddleware`` costs tens.

A response sent before its request's body was read to the end (a 413, a 401
or 415 answered at the edge, a route that ignores the body) is sent whole and
then held open while the rest of the body is read and dropped (up to
``DRAIN_BYTES`` or ``DRAIN_S``): closing a connection with unread bytes resets
it, and a client still sending its body would lose the answer (ORCH-0160).
Only then is the response finished, so the connection guard never takes body
bytes for the next request's head; a body that did not end in time closes the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.errors import unexpected_error
from orchestrator.connections import ConnectionGuard
from orchestrator.errors import ApiError, new_request_id
from orchestrator.numerals import ascii_int
from orchestrator.vocabulary import ErrorKind

log = logging.getLogger("orchestrator.api")

_MAX_REQUEST_ID = 128
DRAIN_BYTES = 64 * 1024 * 1024
"""How much of a body over the limit is read and dropped after the 413, at most."""
DRAIN_S = 5.0
"""For how long, at most."""
OPERATIONAL_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))
"""Answered also at the connection limit (ORCH-0167)."""

_EDGE_HEADERS = frozenset(
    (b"authorization", b"content-length", b"content-type", b"transfer-encoding", b"x-request-id")
)
_CLOSE = (b"connection", b"close")


def _edge_headers(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request headers the edge acts on, read in one pass; the first of each counts."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _EDGE_HEADERS and name not in found:
            found[name] = value
    return found


def _request_id(supplied: bytes | None) -> str:
    if supplied is not None:
        text = supplied.decode("latin-1")
        if 0 < len(text) <= _MAX_REQUEST_ID and text.isprintable():
            return text
    return new_request_id()


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


async def _send_error(send: Send, error: ApiError, request_id: str) -> None:
    """Answer ``error`` in the envelope through ``send``, which adds X-Request-Id."""
    body = json.dumps(error.envelope(request_id), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
    if error.kind is ErrorKind.UNAUTHORIZED:
        headers.append((b"www-authenticate", b'Bearer realm="orchq"'))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        auth_token: str | None,
        max_body_bytes: int,
        connections: ConnectionGuard | None = None,
    ) -> None:
        self.app = app
        self._token = f"Bearer {auth_token}".encode() if auth_token else None
        self._max_body = max_body_bytes
        self._connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _edge_headers(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        encoded_id = request_id.encode("latin-1")
        started = completed = False
        guard, client = self._connections, scope.get("client")
        excess = guard is not None and guard.request_started(client)
        closing = guard is not None and guard.closes_after_response(client)
        declared = headers.get(b"content-length")
        body_read = declared in (None, b"0") and b"transfer-encoding" not in headers
        outer_receive = receive

        async def tracked_receive() -> Message:
            nonlocal body_read
            message = await outer_receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        receive = tracked_receive

        async def send_with_id(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-request-id", encoded_id), *((_CLOSE,) if closing else ())]
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                reusable = True
                if not body_read:  # the answer first, then the rest of the body
                    await send({**message, "more_body": True})
                    reusable = await _drain(receive)
                    message = {"type": "http.response.body", "body": b""}
                completed = True
                if guard is not None:
                    guard.response_finished(client, reusable=reusable)
            await send(message)

        async def call_app(receive: Receive) -> None:
            # An unexpected exception is answered here, inside the request-id layer:
            # left to Starlette's ServerErrorMiddleware, the 500 would lack
            # X-Request-Id and the re-raise would make uvicorn drop the connection.
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if completed:
                    return  # an inner layer already answered (and logged) the error
                if started:
                    raise  # a response cut off midway: only dropping the connection is honest
                error = unexpected_error(exc, scope["method"], scope["path"])
                await _send_error(send_with_id, error, request_id)

        if excess and scope["path"] not in OPERATIONAL_PATHS:
            busy = ApiError(
                ErrorKind.SERVER_BUSY,
                "the server is at its connection limit; retry after the backoff",
            )
            await _send_error(send_with_id, busy, request_id)
            return

        if (
            self._token is not None
            and scope["path"].startswith("/v1/")
            and not hmac.compare_digest(headers.get(b"authorization", b""), self._token)
        ):
            unauthorized = ApiError(ErrorKind.UNAUTHORIZED, "missing or wrong bearer token")
            await _send_error(send_with_id, unauthorized, request_id)
            return

        if scope["method"] in ("POST", "PUT", "PATCH") and declared != b"0":
            content_type = headers.get(b"content-type")
            refused = None
            if content_type is None and (declared is not None or b"transfer-encoding" in headers):
                refused = "request body must be application/json, and no Content-Type was given"
            elif content_type is not None and not _is_json(content_type):
                media = content_type.decode("latin-1").split(";", 1)[0].strip() or "empty"
                refused = f"request body must be application/json, not {media}"
            if refused is not None:
                media_error = ApiError(ErrorKind.UNSUPPORTED_MEDIA_TYPE, refused)
                await _send_error(send_with_id, media_error, request_id)
                return
        if declared is not None:
            size = ascii_int(declared, max_digits=30)
            if size is not None and size > self._max_body:
                await _send_error(send_with_id, self._too_large(), request_id)
                return
            await call_app(receive)
            return

        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await call_app(receive)
            return
        # Chunked body of unknown size: read it (bounded) before routing.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                await _send_error(send_with_id, self._too_large(), request_id)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await call_app(replay)

    def _too_large(self) -> ApiError:
        return ApiError(ErrorKind.PAYLOAD_TOO_LARGE, f"request body exceeds {self._max_body} bytes")


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of a request body; False when it did not end in bounds."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while dropped < DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # the client went away
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    return False

"""Cross-cutting HTTP concerns as one pure ASGI middleware.

Request ids, bearer auth and the body-size limit apply to every route, so they
sit in front of routing; a pure ASGI layer costs a few microseconds per request
where Starlette's ``BaseHTTPMiddleware`` costs tens.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api.errors import unexpected_error
from orchestrator.errors import ApiError, ErrorKind

log = logging.getLogger("orchestrator.api")

_MAX_REQUEST_ID = 128


_EDGE_HEADERS = frozenset(
    (b"authorization", b"content-length", b"content-type", b"transfer-encoding", b"x-request-id")
)


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
    return f"req_{os.urandom(8).hex()}"  # secrets.token_hex(8), two calls shorter


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


async def send_error(
    send: Send, error: ApiError, request_id: str, *, with_request_id: bool = True
) -> None:
    """Answer ``error`` in the envelope; inner layers leave X-Request-Id to the edge."""
    body = json.dumps(error.envelope(request_id), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if with_request_id:
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
    if error.kind is ErrorKind.UNAUTHORIZED:
        headers.append((b"www-authenticate", b'Bearer realm="orchq"'))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, auth_token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._token = f"Bearer {auth_token}".encode() if auth_token else None
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _edge_headers(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        encoded_id = request_id.encode("latin-1")
        started = completed = False

        async def send_with_id(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", encoded_id)]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True
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
                await send_error(send, error, request_id)

        if (
            self._token is not None
            and scope["path"].startswith("/v1/")
            and not hmac.compare_digest(headers.get(b"authorization", b""), self._token)
        ):
            await send_error(
                send, ApiError(ErrorKind.UNAUTHORIZED, "missing or wrong bearer token"), request_id
            )
            return

        declared = headers.get(b"content-length")
        if scope["method"] in ("POST", "PUT", "PATCH") and declared != b"0":
            content_type = headers.get(b"content-type")
            refused = None
            if content_type is None and (declared is not None or b"transfer-encoding" in headers):
                refused = "request body must be application/json, and no Content-Type was given"
            elif content_type is not None and not _is_json(content_type):
                media = content_type.decode("latin-1").split(";", 1)[0].strip() or "empty"
                refused = f"request body must be application/json, not {media}"
            if refused is not None:
                await send_error(
                    send, ApiError(ErrorKind.UNSUPPORTED_MEDIA_TYPE, refused), request_id
                )
                return
        if declared is not None:
            try:
                too_large = int(declared) > self._max_body
            except ValueError:
                too_large = False
            if too_large:
                await send_error(send, self._too_large(), request_id)
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
                await send_error(send, self._too_large(), request_id)
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

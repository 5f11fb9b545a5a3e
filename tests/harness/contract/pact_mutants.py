"""Deliberately broken orchestrators for the pact self-tests (``orch_serve(wrap_app=...)``).

Each mutant is an ASGI layer around the real app that changes one thing the
contract pins, the way a provider drifts in practice: a renamed field, a
dropped header.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def json_body_mutant(
    method: str, path: str, transform: Callable[[Any], Any]
) -> Callable[[App], App]:
    """Rewrite the JSON body of ``method`` on paths fully matching ``path``."""
    pattern = re.compile(path)

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != "http"
                or scope["method"] != method
                or not pattern.fullmatch(scope["path"])
            ):
                await app(scope, receive, send)
                return
            start: Message = {}
            chunks: list[bytes] = []

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                    return
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                with contextlib.suppress(ValueError):
                    body = json.dumps(transform(json.loads(body))).encode()
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})

            await app(scope, receive, capture)

        return mutant

    return wrap


def rename_field(old: str, new: str) -> Callable[[Any], Any]:
    def transform(data: Any) -> Any:
        if isinstance(data, dict) and old in data:
            data[new] = data.pop(old)
        return data

    return transform


def drop_headers_mutant(*names: str) -> Callable[[App], App]:
    """Remove response headers (e.g. ``Retry-After``) from every answer."""
    dropped = {name.lower().encode() for name in names}

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            async def filtered(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message["headers"] if k.lower() not in dropped]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, filtered)

        return mutant

    return wrap


def stream_text_mutant(
    pattern: str, replacement: str | Callable[[re.Match[str]], str]
) -> Callable[[App], App]:
    """Rewrite every chunk of task streams (``GET /v1/tasks/{id}/stream``) with a regex."""
    rx = re.compile(pattern)
    stream_path = re.compile(r"/v1/tasks/[^/]+/stream")

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not stream_path.fullmatch(scope["path"]):
                await app(scope, receive, send)
                return

            async def rewrite(message: Message) -> None:
                if message["type"] == "http.response.body" and message.get("body"):
                    text = rx.sub(replacement, message["body"].decode())
                    message = {**message, "body": text.encode()}
                await send(message)

            await app(scope, receive, rewrite)

        return mutant

    return wrap

"""Deliberately broken orchestrators for the pact self-tests (``orch_serve(wrap_app=...)``).

Each mutant is an ASGI layer around the real app that changes one thing the
contract pins, the way a provider drifts in practice: a renamed field, a
dropped header.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

from tests.harness.mutantkit import (
    App,
    Headers,
    Wrap,
    matching,
    rewrite_chunks,
    rewrite_headers,
    rewrite_response,
    without,
)


def json_body_mutant(method: str, path: str, transform: Callable[[Any], Any]) -> Wrap:
    """Rewrite the JSON body of ``method`` on paths fully matching ``path``."""
    applies = matching(method, path)

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        with contextlib.suppress(ValueError):
            body = json.dumps(transform(json.loads(body))).encode()
        return status, body

    def wrap(app: App) -> App:
        return rewrite_response(app, change, applies)

    return wrap


def rename_field(old: str, new: str) -> Callable[[Any], Any]:
    def transform(data: Any) -> Any:
        if isinstance(data, dict) and old in data:
            data[new] = data.pop(old)
        return data

    return transform


def drop_headers_mutant(*names: str) -> Wrap:
    """Remove response headers (e.g. ``Retry-After``) from every answer."""
    dropped = tuple(name.lower().encode() for name in names)

    def change(status: int, headers: Headers) -> Headers:
        return without(headers, *dropped)

    def wrap(app: App) -> App:
        return rewrite_headers(app, change)

    return wrap


def add_field(name: str, value: Any) -> Callable[[Any], Any]:
    def transform(data: Any) -> Any:
        if isinstance(data, dict):
            data[name] = value
        return data

    return transform


def status_mutant(method: str, path: str, old: int, new: int) -> Wrap:
    """Answer ``new`` instead of ``old`` to ``method`` on paths fully matching ``path``, the
    body as it was."""
    applies = matching(method, path)

    def change(status: int, body: bytes) -> tuple[int, bytes]:
        return (new if status == old else status), body

    def wrap(app: App) -> App:
        return rewrite_response(app, change, applies)

    return wrap


CHECKPOINTS = "/v1/runs/[^/]+/checkpoints/[^/]+"
WEBHOOK = "/v1/webhooks/[^/]+"
TASK_STREAMS = "/v1/tasks/[^/]+/stream"
RUN_STREAMS = "/v1/runs/[^/]+/events"


def stream_text_mutant(
    pattern: str,
    replacement: str | Callable[[re.Match[str]], str],
    streams: str = TASK_STREAMS,
) -> Wrap:
    """Rewrite every chunk of the streams on paths matching ``streams`` (task streams unless
    told) with a regex."""
    rx = re.compile(pattern)

    def change(chunk: bytes) -> bytes:
        return rx.sub(replacement, chunk.decode()).encode() if chunk else chunk

    def wrap(app: App) -> App:
        return rewrite_chunks(app, change, matching(path=streams))

    return wrap


MUTANTS: dict[str, tuple[Wrap, str, str]] = {
    "429 without Retry-After": (
        drop_headers_mutant("Retry-After"), "queue of pool default is full", "ORCH-0021",
    ),
    "stream_url renamed events_url": (
        json_body_mutant("POST", "/v1/tasks", rename_field("stream_url", "events_url")),
        "best-effort task without a seed", "ORCH-0042",
    ),
    "stream without its retry: line": (
        stream_text_mutant(r"retry: \d+\n\n", ""), "stream a completed task", "ORCH-0073",
    ),
    "stream ids from 0": (
        stream_text_mutant(r"id: (\d+)\n", lambda m: f"id: {int(m.group(1)) - 1}\n"),
        "stream a completed task", "ORCH-0072",
    ),
    "run without its Location": (
        drop_headers_mutant("Location"), "start a run", "ORCH-0317",
    ),
    "run stream's step.succeeded renamed step.done": (
        stream_text_mutant("event: step.succeeded", "event: step.done", RUN_STREAMS),
        "stream the events of a completed run", "ORCH-0351",
    ),
    "stream error WORKER_RESET renamed REPLICA_RESET": (
        stream_text_mutant(r'"kind": ?"WORKER_RESET"', '"kind":"REPLICA_RESET"'),
        "stream a task that failed with WORKER_RESET", "ORCH-0108",
    ),
    "second checkpoint decision answered 200": (
        status_mutant("POST", CHECKPOINTS, 409, 200),
        "decide a checkpoint decided before", "ORCH-0370",
    ),
    "webhook shown with its secret": (
        json_body_mutant("GET", WEBHOOK, add_field("secret", "orchq-pact-secret-0123")),
        "get a webhook subscription", "ORCH-0404",
    ),
}  # fmt: skip
"""name -> (wrap_app, the pact interaction it breaks (a ``-k`` substring), ORCH ID):
the drifts ``test_provider_mutants`` shows the provider verification catching."""

"""API-shape snapshots: what each kind of answer looks like, pinned with syrupy.

A shape document holds, per answer, its status, the headers a client reads
(``Location``, ``Retry-After``, ``X-Backoff-Ms``, ``Allow``, ``Content-Type``,
``X-Request-Id``) and its body; a stream is its transcript (``retry:``, then each
event's id, name and decoded data). Values no two runs or servers share are
replaced by :func:`volatile`, a syrupy property matcher, before comparing:
IDs, timestamps, the backoff jitter, remaining TTLs, human messages, the
engine's name, version and tokens, and what a server's configuration decides
(pool names, capacities, replica counts). What is left is the shape the spec
pins: every field's name, presence, nullness and the values the spec fixes
(states, kinds, ``retriable``, event names and ids). A renamed, removed or added
field changes the document, and syrupy shows the diff.

Files live under the top-level ``snapshots/`` like the determinism snapshots
(:class:`~harness.determinism.snapshot.RepositorySnapshotExtension`), one per test;
``--snapshot-update`` rewrites them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from syrupy.matchers import compose_matchers

from harness.determinism.snapshot import RepositorySnapshotExtension

if TYPE_CHECKING:
    from syrupy.types import PropertyPath, SerializableData

    from harness.wire.stream import SseCapture

__all__ = [
    "READ_HEADERS",
    "ShapeSnapshotExtension",
    "answer",
    "transcript",
    "volatile",
]

READ_HEADERS = ("Allow", "Content-Type", "Location", "Retry-After", "X-Backoff-Ms", "X-Request-Id")
"""Response headers a client of OrchQueue v1 reads; the shapes record these only."""

PLACEHOLDERS: dict[str, str] = {
    # identities the server makes up
    "session_id": "<session id>",
    "task_id": "<task id>",
    "request_id": "<request id>",
    "X-Request-Id": "<request id>",
    "Location": "<resource path>",
    "stream_url": "<stream path>",
    # time
    "created_at": "<timestamp>",
    "expires_at": "<timestamp>",
    "started_at": "<timestamp>",
    "finished_at": "<timestamp>",
    "ttl_remaining_ms": "<milliseconds>",
    "Retry-After": "<seconds>",
    "X-Backoff-Ms": "<milliseconds>",
    # words for people, and what the engine produces
    "message": "<text>",
    "engine": "<engine>",
    "engine_version": "<engine version>",
    "replica_id": "<replica id>",
    "text": "<token text>",
    "token_id": "<token id>",
    # what a server's configuration decides
    "pool_id": "<pool id>",
    "queue_capacity": "<count>",
    "max_attempts": "<count>",
    "batch_share_every": "<count>",
    "decode_timeout_ms": "<milliseconds>",
    "slots": "<count>",
    "in_flight": "<count>",
    "interactive": "<count>",
    "batch": "<count>",
    "ready": "<bool>",
}
"""Keys whose values differ between runs or servers, and what a snapshot shows instead."""
_VARIABLE_LISTS = frozenset({"replicas", "pools", "attempts"})
"""Lists whose length a server decides: a shape keeps their first item."""


def volatile(*, data: SerializableData, path: PropertyPath) -> SerializableData:
    """The syrupy property matcher of shape snapshots (see :data:`PLACEHOLDERS`).

    ``null`` stays ``null``: whether a field is null is part of the shape.
    """
    if not path:
        return data
    key = path[-1][0]
    if isinstance(key, str):
        if key in PLACEHOLDERS and data is not None and not isinstance(data, dict | list):
            return PLACEHOLDERS[key]
        if key in _VARIABLE_LISTS and isinstance(data, list) and len(data) > 1:
            return data[:1]
    return data


def answer(response: httpx.Response) -> dict[str, Any]:
    """One HTTP answer as a shape: status, the headers a client reads, the body."""
    headers = {name: response.headers[name] for name in READ_HEADERS if name in response.headers}
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "headers": headers, "body": body}


_RETRY = re.compile(r"^\d+$")


def transcript(capture: SseCapture) -> dict[str, Any]:
    """A stream as a shape: status, media type (without parameters), ``retry:`` lines, events."""
    return {
        "status": capture.status,
        "content_type": capture.content_type.split(";")[0].strip(),
        "retry": ["<milliseconds>" if _RETRY.match(r) else r for r in capture.retries],
        "events": [
            {"id": event.id, "event": event.event, "data": event.data} for event in capture.events
        ],
    }


class ShapeSnapshotExtension(RepositorySnapshotExtension):
    """JSON snapshots of shapes: syrupy's JSON rendering (sorted keys), with
    :func:`volatile` applied first, then the assertion's own matcher if it has one."""

    def serialize(
        self,
        data: SerializableData,
        *,
        exclude: Any = None,
        include: Any = None,
        matcher: Any = None,
    ) -> Any:
        # syrupy always passes a matcher (its own, which applies the assertion's, if any).
        combined = volatile if matcher is None else compose_matchers(volatile, matcher)
        return super().serialize(data, exclude=exclude, include=include, matcher=combined)


def by_kind(answers: Mapping[str, httpx.Response]) -> dict[str, dict[str, Any]]:
    """Answers keyed by what provoked them, as shapes."""
    return {name: answer(response) for name, response in answers.items()}
